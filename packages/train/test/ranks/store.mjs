// Talks to the launcher's TCP store with the documented wire protocol: AUTH then ADD 'joined' 1.
import * as net from 'node:net';

function req(op, key, value = Buffer.alloc(0), timeoutMs = 0) {
  const k = Buffer.from(key);
  const b = Buffer.alloc(13 + k.length + value.length);
  b.writeUInt8(op, 0);
  b.writeUInt32LE(k.length, 1);
  k.copy(b, 5);
  b.writeUInt32LE(value.length, 5 + k.length);
  value.copy(b, 9 + k.length);
  b.writeUInt32LE(timeoutMs, 9 + k.length + value.length);
  return b;
}
const secret = process.argv[2] === 'wrong' ? 'not-the-secret' : process.env.OMNITRAIN_STORE_SECRET;
const s = net.connect({ host: process.env.MASTER_ADDR, port: Number(process.env.MASTER_PORT) });
const one = Buffer.alloc(8);
one.writeBigInt64LE(1n);
let buf = Buffer.alloc(0);
s.on('connect', () => s.write(Buffer.concat([req(1, secret), req(4, 'joined', one)])));
s.on('data', (c) => {
  buf = Buffer.concat([buf, c]);
  if (buf.length >= 5 && buf[0] !== 0) {
    console.log(`auth status ${buf[0]}`);
    process.exit(5);
  }
  if (buf.length >= 5 + 5 + 8) {
    console.log(`auth ok, joined ${buf.readBigInt64LE(10)}`);
    s.end();
  }
});
