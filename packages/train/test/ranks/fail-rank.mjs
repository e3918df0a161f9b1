// The rank given as the first argument exits with code 4 after a moment; the others would run for a minute.
const rank = Number(process.env.RANK);
if (rank === Number(process.argv[2])) {
  setTimeout(() => process.exit(4), 400);
} else {
  console.log(`waiting on node ${process.env.NODE_RANK}`);
  setTimeout(() => {}, 60_000);
}
