// Rank 1 is killed by SIGKILL; the others ignore SIGTERM, so the launcher must escalate to SIGKILL.
const rank = Number(process.env.RANK);
if (rank === 1) {
  setTimeout(() => process.kill(process.pid, 'SIGKILL'), 300);
} else {
  process.on('SIGTERM', () => console.log('ignoring SIGTERM'));
  console.log('waiting');
  setTimeout(() => {}, 60_000);
}
