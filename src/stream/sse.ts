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
const EMPTY = Buffer.alloc(0);
const LF_LF = Buffer.from("\n\n");

export class SseParser {
  private tail: Buffer = EMPTY;
  /** Bytes of `tail` already known to hold no event boundary. */
  private scanned = 0;

  /** Feeds a chunk; returns the events it completed. */
  push(chunk: Buffer): SseEvent[] {
    const buf = this.tail.length === 0 ? chunk : Buffer.concat([this.tail, chunk]);
    const events: SseEvent[] = [];
    let start = 0;
    // A boundary may have begun up to three bytes before the new chunk (\r\n\r | \n).
    let i = Math.max(0, this.scanned - 3);
    // Most servers end lines with LF alone: then an event ends at the first LF LF, found by one search.
    const lfOnly = buf.indexOf(CR) < 0;
    while (i < buf.length) {
      const end = lfOnly ? lfBlankLineEnd(buf, i) : blankLineEnd(buf, i);
      if (end < 0) break;
      // One event per read is the usual case: its bytes are the chunk itself.
      events.push(parseBlock(start === 0 && end === buf.length ? buf : buf.subarray(start, end), lfOnly));
      start = end;
      i = end;
    }
    this.tail = start === 0 ? buf : start === buf.length ? EMPTY : buf.subarray(start);
    this.scanned = this.tail.length;
    return events;
  }

  /** The stream ended: an unterminated last event still counts. */
  end(): SseEvent[] {
    const rest = this.tail;
    this.tail = EMPTY;
    this.scanned = 0;
    if (rest.length === 0 || isBlank(rest)) return [];
    return [parseBlock(rest, rest.indexOf(CR) < 0)];
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

/** `blankLineEnd` for bytes known to hold no CR. */
function lfBlankLineEnd(buf: Buffer, from: number): number {
  const at = buf.indexOf(LF_LF, from);
  return at < 0 ? -1 : at + 2;
}

function hasCr(buf: Buffer, from: number, to: number): boolean {
  const cr = buf.indexOf(CR, from);
  return cr >= 0 && cr < to;
}

function isBlank(buf: Buffer): boolean {
  for (const byte of buf) if (byte !== LF && byte !== CR) return false;
  return true;
}

/** `data: ` */
const D = 0x64, A = 0x61, T = 0x74, COLON = 0x3a, SPACE = 0x20;

function parseBlock(raw: Buffer, lfOnly: boolean): SseEvent {
  // The usual event is one "data: ..." line: take its value without splitting lines.
  let end = raw.length;
  while (end > 0 && (raw[end - 1] === LF || raw[end - 1] === CR)) end--;
  if (end > 6 && raw[0] === D && raw[1] === A && raw[2] === T && raw[3] === A && raw[4] === COLON && raw[5] === SPACE) {
    const lf = raw.indexOf(LF, 6);
    if ((lf < 0 || lf >= end) && (lfOnly || !hasCr(raw, 6, end))) return { event: undefined, data: raw.toString("utf8", 6, end), raw };
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
