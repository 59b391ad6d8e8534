import { createSocket } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import * as packet from 'dns-packet';

/** One record the test server answers with. */
export type TestRecord =
  | { type: 'A' | 'AAAA'; address: string; ttl?: number }
  | { type: 'SRV'; target: string; port: number; priority?: number; weight?: number; ttl?: number };

/**
 * A real DNS server on 127.0.0.1 UDP for tests (dns-packet encodes and decodes the wire format):
 * `records[name]` is what it answers, changeable while it runs. A name it has no records of gets
 * NXDOMAIN; `fail = true` makes it answer SERVFAIL to everything; `silent = true` makes it answer
 * nothing (the client times out).
 */
export interface TestDnsServer {
  /** `127.0.0.1:PORT`, for `servers:`. */
  readonly address: string;
  records: Record<string, TestRecord[]>;
  fail: boolean;
  silent: boolean;
  /** Questions seen, as `TYPE name`. */
  readonly questions: string[];
  close(): Promise<void>;
}

export async function startDnsServer(records: Record<string, TestRecord[]> = {}): Promise<TestDnsServer> {
  const socket = createSocket('udp4');
  const server = {
    records,
    fail: false,
    silent: false,
    questions: [] as string[],
  } as { -readonly [K in keyof TestDnsServer]: TestDnsServer[K] };
  socket.on('message', (message, rinfo) => {
    let query: packet.Packet;
    try {
      query = packet.decode(message);
    } catch {
      return;
    }
    const question = query.questions?.[0];
    if (question === undefined) return;
    server.questions.push(`${question.type} ${question.name}`);
    if (server.silent) return;
    const known = server.records[question.name];
    const answers: packet.Answer[] = (known ?? [])
      .filter((r) => r.type === question.type)
      .map((r) =>
        r.type === 'SRV'
          ? {
              type: 'SRV',
              name: question.name,
              ttl: r.ttl ?? 1,
              data: { target: r.target, port: r.port, priority: r.priority ?? 10, weight: r.weight ?? 1 },
            }
          : { type: r.type, name: question.name, ttl: r.ttl ?? 1, data: r.address },
      );
    const rcode = server.fail ? 'SERVFAIL' : known === undefined ? 'NXDOMAIN' : 'NOERROR';
    const reply = packet.encode({
      id: query.id ?? 0,
      type: 'response',
      // QR (response), RD and RA, and the response code (SERVFAIL 2, NXDOMAIN 3).
      flags:
        packet.RECURSION_DESIRED |
        packet.RECURSION_AVAILABLE |
        { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3 }[rcode],
      questions: [question],
      answers: server.fail ? [] : answers,
    });
    socket.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  server.address = `127.0.0.1:${(socket.address() as AddressInfo).port}`;
  server.close = () => new Promise<void>((resolve) => socket.close(() => resolve()));
  return server;
}
