/**
 * First host of a Slurm hostlist expression: `node[01-04,07],gpu5` -> `node01`,
 * `rack[2-3]-n[5,9]` -> `rack2-n5`, `a,b` -> `a`.
 */
export function firstHostOfNodelist(nodelist: string): string {
  let depth = 0;
  let end = nodelist.length;
  for (let i = 0; i < nodelist.length; i++) {
    const c = nodelist[i];
    if (c === '[') depth++;
    else if (c === ']') depth--;
    else if (c === ',' && depth === 0) {
      end = i;
      break;
    }
  }
  const first = nodelist.slice(0, end).trim();
  const host = first.replace(/\[([^\]]*)\]/g, (_, inner: string) => inner.split(',')[0]!.split('-')[0]!);
  if (!host) throw new Error(`cannot read a host from the Slurm node list '${nodelist}'`);
  return host;
}
