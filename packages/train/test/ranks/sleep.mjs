// Prints once and stays up for a minute (the launcher gets stopped meanwhile).
console.log(`up pid ${process.pid}`);
setTimeout(() => {}, 60_000);
