/**
 * Packing, signing and verifying messages: HMAC-SHA256 over msgpack, as backend/session.py.
 * Frames are [hex signature, payload]; the key is the connection file's `key` as UTF-8 bytes.
 */

import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { decode, encode } from "@msgpack/msgpack";
import { Message, PROTOCOL_VERSION, ProtocolError, validate } from "./protocol";

export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
export const REPLAY_WINDOW_SECONDS = 300;

export function newId(): string {
  return randomBytes(16).toString("hex");
}

/** An envelope: version, unique id, type, Unix time, parent (the request a reply answers). */
export function makeMessage<B extends object>(type: string, body: B, parent: string | null = null): Message {
  return {
    v: PROTOCOL_VERSION,
    id: newId(),
    type,
    ts: Date.now() / 1000,
    parent,
    body: body as Record<string, unknown>,
  };
}

/** Signs outgoing messages and verifies incoming ones for one shared key. */
export class Session {
  private readonly key: Buffer;
  private readonly seen = new Map<string, number>();

  constructor(
    key: string,
    private readonly replayWindow = REPLAY_WINDOW_SECONDS,
  ) {
    this.key = Buffer.from(key, "utf8");
    if (this.key.length < 16) {
      throw new Error("a signing key must be at least 16 bytes");
    }
  }

  sign(payload: Uint8Array): Buffer {
    return Buffer.from(createHmac("sha256", this.key).update(payload).digest("hex"), "ascii");
  }

  pack(msg: Message): [Buffer, Buffer] {
    // ignoreUndefined: an optional field left out must not travel as nil (the daemon
    // would refuse `queue: None`, for one).
    const encoded = encode(msg, { ignoreUndefined: true });
    const payload = Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength);
    return [this.sign(payload), payload];
  }

  /** Verify and decode [signature, payload]; throw ProtocolError if not acceptable. */
  unpack(frames: Uint8Array[]): Message {
    if (frames.length !== 2) {
      throw new ProtocolError("malformed", `expected 2 frames (signature, payload), got ${frames.length}`);
    }
    const [signature, payload] = frames;
    if (payload.byteLength > MAX_MESSAGE_BYTES) {
      throw new ProtocolError("oversized", `message of ${payload.byteLength} bytes exceeds the limit`);
    }
    const expected = this.sign(payload);
    if (signature.byteLength !== expected.byteLength || !timingSafeEqual(signature, expected)) {
      throw new ProtocolError(
        "bad_signature",
        "message signature does not match",
        "the daemon's key differs: it may have restarted; restart the backend connection",
      );
    }
    const msg = validate(decodePayload(payload));
    this.checkReplay(Buffer.from(signature).toString("ascii"), msg.ts);
    return msg;
  }

  private checkReplay(signature: string, ts: number): void {
    const now = Date.now() / 1000;
    if (Math.abs(now - ts) > this.replayWindow) {
      throw new ProtocolError(
        "replayed",
        `message timestamp is ${Math.round(now - ts)}s away from this machine's clock`,
        "check that both machines' clocks are synchronised (NTP)",
      );
    }
    if (this.seen.has(signature)) {
      throw new ProtocolError("replayed", "message was already received once (replay)");
    }
    this.seen.set(signature, ts);
    for (const [oldest, when] of this.seen) {
      if (now - when <= this.replayWindow && this.seen.size <= 1_000_000) {
        break;
      }
      this.seen.delete(oldest);
    }
  }
}

function decodePayload(payload: Uint8Array): unknown {
  try {
    return decode(payload);
  } catch (err) {
    throw new ProtocolError("malformed", `payload is not valid msgpack: ${String(err)}`);
  }
}
