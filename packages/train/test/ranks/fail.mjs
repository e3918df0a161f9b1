// Rank 1 exits with code 3 after a moment; the others would run for a minute.
const rank = Number(process.env.RANK);
if (rank === 1) {
  setTimeout(() => process.exit(3), 300);
} else {
  console.log('waiting');
  setTimeout(() => console.log('rank finished normally (should not happen)'), 60_000);
}
