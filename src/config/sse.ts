import type { ServerResponse } from 'node:http';

/** One server-sent event. */
export interface SseEvent {
  id?: string;
  event?: string;
  data: string;
}

/** Writes one event (data lines split so a newline in the payload cannot end the event early). */
export function writeSse(res: ServerResponse, e: SseEvent): void {
  let out = '';
  if (e.id !== undefined) out += `id: ${e.id}\n`;
  if (e.event !== undefined) out += `event: ${e.event}\n`;
  for (const line of e.data.split('\n')) out += `data: ${line}\n`;
  res.write(`${out}\n`);
}

/**
 * Parses an SSE byte stream into events (the WHATWG event-stream format). Written here because
 * the EventSource in undici cannot send an Authorization header or pick Last-Event-ID per
 * connection, and the config client needs both to resume a watch with a token.
 */
export async function* parseSse(body: AsyncIterable<Uint8Array>): AsyncIterable<SseEvent> {
  const decoder = new TextDecoder();
  let buffer = '';
  let data: string[] = [];
  let event: string | undefined;
  let id: string | undefined;
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    let nl = buffer.search(/\r\n|\r|\n/);
    while (nl >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + (buffer.startsWith('\r\n', nl) ? 2 : 1));
      if (line === '') {
        if (data.length > 0) {
          yield {
            data: data.join('\n'),
            ...(event === undefined ? {} : { event }),
            ...(id === undefined ? {} : { id }),
          };
        }
        data = [];
        event = undefined;
        id = undefined;
      } else if (!line.startsWith(':')) {
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'data') data.push(value);
        else if (field === 'event') event = value;
        else if (field === 'id') id = value;
      }
      nl = buffer.search(/\r\n|\r|\n/);
    }
  }
}
