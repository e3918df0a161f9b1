// Rank 1 fails in the first two attempts; every rank succeeds from the third on.
const rank = Number(process.env.RANK);
const attempt = Number(process.env.OMNITRAIN_RESTART_COUNT);
console.log(`attempt ${attempt}`);
if (rank === 1 && attempt < 2) setTimeout(() => process.exit(7), 200);
else setTimeout(() => process.exit(0), 100);
