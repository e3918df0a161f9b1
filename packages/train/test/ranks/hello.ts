// A TypeScript rank script: the launcher runs .ts files directly (type stripping).
const rank: number = Number(process.env.RANK);
const world: number = Number(process.env.WORLD_SIZE);
console.log(`hello from ${rank} of ${world}`);
