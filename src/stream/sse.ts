/**
 * An incremental Server-Sent Events parser: bytes in, events out. It keeps
 * only the unfinished tail between calls (never the whole stream) and hands
 * back each event's raw bytes, so an event the gateway does not change is
 * relayed exactly as the upstream sent it.
 */

export interface SseEvent {
  /** The `event:` field, when there is one. */
  readonly event: string | undefined;
  /** The `data:` lines joined with "\n"; undefined for an event with no data (comments, pings). */
  readonly data: string | undefined;
  /** The event's bytes, blank line included. */
  readonly raw: Buffer;
}

const LF = 0x0a;
const CR = 0x0d;

export class SseParser {
  private tail: Buffer = Buffer.alloc(0);
  /** Bytes of `tail` already known to hold no event boundary. */
  private scanned = 0;

  /** Feeds a chunk; returns the events it completed. */
  push(chunk: Buffer): SseEvent[] {
    const buf = this.tail.length === 0 ? chunk : Buffer.concat([this.tail, chunk]);
    const events: SseEvent[] = [];
    let start = 0;
    // A boundary may have begun up to three bytes before the new chunk (\r\n\r | \n).
    let i = Math.max(0, this.scanned - 3);
    while (i < buf.length) {
      const end = blankLineEnd(buf, i);
      if (end < 0) break;
      events.push(parseBlock(buf.subarray(start, end)));
      start = end;
      i = end;
    }
    this.tail = start === 0 ? buf : buf.subarray(start);
    this.scanned = this.tail.length;
    return events;
  }

  /** The stream ended: an unterminated last event still counts. */
  end(): SseEvent[] {
    const rest = this.tail;
    this.tail = Buffer.alloc(0);
    this.scanned = 0;
    if (rest.length === 0 || isBlank(rest)) return [];
    return [parseBlock(rest)];
  }
}

/**
 * Index just past the first blank line at or after `from` (an event ends with
 * two line ends: LF LF, CRLF CRLF, CR CR, or mixed), or -1.
 */
function blankLineEnd(buf: Buffer, from: number): number {
  let i = from;
  for (;;) {
    const lf = buf.indexOf(LF, i);
    const cr = buf.indexOf(CR, i);
    let at: number;
    if (lf < 0 && cr < 0) return -1;
    if (lf < 0) at = cr;
    else if (cr < 0) at = lf;
    else at = Math.min(lf, cr);
    // Length of this line ending, and whether the next line is empty.
    let next = at + 1;
    if (buf[at] === CR) {
      if (next >= buf.length) return -1; // a CR at the end may be the start of CRLF
      if (buf[next] === LF) next++;
    }
    if (next >= buf.length) return -1;
    if (buf[next] === LF) return next + 1;
    if (buf[next] === CR) {
      if (next + 1 >= buf.length) return -1;
      return buf[next + 1] === LF ? next + 2 : next + 1;
    }
    i = next;
  }
}

function isBlank(buf: Buffer): boolean {
  for (const byte of buf) if (byte !== LF && byte !== CR) return false;
  return true;
}

const DATA_PREFIX = Buffer.from("data: ");

function parseBlock(raw: Buffer): SseEvent {
  // The usual event is one "data: ..." line: take its value without splitting lines.
  let end = raw.length;
  while (end > 0 && (raw[end - 1] === LF || raw[end - 1] === CR)) end--;
  if (raw.compare(DATA_PREFIX, 0, 6, 0, Math.min(6, end)) === 0 && end > 6) {
    const lf = raw.indexOf(LF, 6);
    const cr = raw.indexOf(CR, 6);
    if ((lf < 0 || lf >= end) && (cr < 0 || cr >= end)) return { event: undefined, data: raw.toString("utf8", 6, end), raw };
  }
  let event: string | undefined;
  let data: string | undefined;
  const text = raw.toString("utf8");
  for (const line of text.split(/\r\n|\r|\n/)) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") data = data === undefined ? value : `${data}\n${value}`;
    else if (field === "event") event = value;
  }
  return { event, data, raw };
}
