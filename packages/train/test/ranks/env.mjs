// Prints what the launcher gave this rank, on several lines of both streams.
const keys = ['RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE', 'NODE_RANK', 'MASTER_ADDR', 'MASTER_PORT'];
const env = Object.fromEntries(keys.map((k) => [k, process.env[k]]));
env.secretLength = (process.env.OMNITRAIN_STORE_SECRET ?? '').length;
env.args = process.argv.slice(2);
process.stdout.write(`ENV ${JSON.stringify(env)}\n`);
process.stdout.write('first line\nsecond line\n');
process.stderr.write('to stderr\n');
process.stdout.write('no newline at the end');
