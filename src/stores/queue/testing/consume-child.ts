/**
 * A consumer process for the conformance suite's kill test: takes a message, says so on stdout,
 * and never settles it, so the parent can SIGKILL it mid-message.
 * Usage: node --import tsx consume-child.ts URL TOPIC GROUP ACK_WAIT_MS
 */
import { openMessageQueue } from '../index.js';

const [url, topic, group, ackWait] = process.argv.slice(2);
const queue = await openMessageQueue(url!);
await queue.consume(
  topic!,
  group!,
  (d) => {
    process.stdout.write(`got ${d.id} ${d.deliveryCount}\n`);
    return new Promise(() => {});
  },
  { ackWaitMs: Number(ackWait) },
);
process.stdout.write('ready\n');
