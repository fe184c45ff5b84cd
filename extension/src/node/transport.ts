/**
 * One ZeroMQ DEALER connection to a daemon: signed requests matched to their replies by
 * parent id, and events handed to listeners. No vscode here.
 */

import { EventEmitter } from "node:events";
import { decode } from "@msgpack/msgpack";
import { Dealer } from "zeromq";
import { clientKeyPair } from "./curve";
import { Logger, silentLogger } from "./logger";
import {
  Bodies,
  ConnectionInfo,
  EventType,
  HelloReplyBody,
  MESSAGE_TYPES,
  Message,
  PROTOCOL_VERSION,
  ProtocolError,
  ReplyType,
  RequestType,
  DaemonError,
  DaemonUnavailable,
  checkVersion,
} from "./protocol";

export { DaemonError, DaemonUnavailable };
export type { ConnectionInfo };
import { Session, makeMessage } from "./session";

export const DEFAULT_TIMEOUT_MS = 10_000;

interface Pending {
  type: string;
  resolve: (msg: Message) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class Transport {
  private readonly socket: Dealer;
  private readonly session: Session;
  private readonly pending = new Map<string, Pending>();
  private readonly events = new EventEmitter();
  private sending: Promise<void> = Promise.resolve();
  private closedReason: string | undefined;

  constructor(
    readonly connection: ConnectionInfo,
    private readonly log: Logger = silentLogger,
  ) {
    this.session = new Session(connection.key);
    this.socket = new Dealer({ linger: 500, sendHighWaterMark: 0, receiveHighWaterMark: 0, ...curveOptions(connection) });
    this.socket.connect(connection.address);
    // The daemon closing its end (stopped, crashed, killed) is the only sign we get of it.
    this.socket.events.on("disconnect", () => this.events.emit("disconnected"));
    void this.receiveLoop();
  }

  get closed(): boolean {
    return this.closedReason !== undefined;
  }

  /** Send a request and resolve with its reply's body; reject with DaemonError on `error`. */
  async request<R extends RequestType>(
    type: R,
    body: Bodies[R],
    timeoutMs = DEFAULT_TIMEOUT_MS,
  ): Promise<Bodies[ReplyType<R>]> {
    const msg = makeMessage(type, body);
    const reply = new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(msg.id);
        reject(
          new DaemonUnavailable(
            `the daemon at ${this.connection.address} did not answer ${type} within ${timeoutMs / 1000}s`,
          ),
        );
      }, timeoutMs);
      this.pending.set(msg.id, { type, resolve, reject, timer });
    });
    await this.post(msg);
    return (await reply).body as unknown as Bodies[ReplyType<R>];
  }

  /** The handshake: the daemon's version, features and pid; DaemonError on a version mismatch.
   * `subscribe_metrics`: also receive the metrics_update events of other clients' runs. */
  async hello(client: string, timeoutMs = DEFAULT_TIMEOUT_MS, options: { subscribe_metrics?: boolean } = {}): Promise<HelloReplyBody> {
    const reply = await this.request("hello", { protocol_version: PROTOCOL_VERSION, client, notices: true, ...options }, timeoutMs);
    checkVersion(reply.protocol_version);
    return reply;
  }

  /** Listen to one event type; returns the function that stops listening. */
  on<E extends EventType>(type: E, listener: (body: Bodies[E]) => void): () => void {
    this.events.on(type, listener);
    return () => this.events.off(type, listener);
  }

  /** Called when the daemon's end of the connection goes away. */
  onDisconnect(listener: () => void): () => void {
    this.events.on("disconnected", listener);
    return () => this.events.off("disconnected", listener);
  }

  close(reason = "the connection was closed"): void {
    if (this.closedReason !== undefined) {
      return;
    }
    this.closedReason = reason;
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(new DaemonUnavailable(`${pending.type}: ${reason}`));
      this.pending.delete(id);
    }
    this.socket.close(); // closes its observer too (closing that first rejects unhandled)
    this.events.removeAllListeners();
  }

  private post(msg: Message): Promise<void> {
    if (this.closedReason !== undefined) {
      return Promise.reject(new DaemonUnavailable(`${msg.type}: ${this.closedReason}`));
    }
    const frames = this.session.pack(msg);
    // zeromq allows one send in flight at a time: queue them.
    const sent = this.sending.then(() => this.socket.send(frames));
    this.sending = sent.catch(() => undefined);
    return sent;
  }

  private async receiveLoop(): Promise<void> {
    while (this.closedReason === undefined) {
      let frames: Buffer[];
      try {
        frames = await this.socket.receive();
      } catch (err) {
        if (this.closedReason === undefined) {
          this.log.error(`hotswap connection: receive failed: ${String(err)}`);
          this.close(`receiving failed: ${String(err)}`);
        }
        return;
      }
      this.dispatch(frames);
    }
  }

  private dispatch(frames: Buffer[]): void {
    let msg: Message;
    try {
      msg = this.session.unpack(frames);
    } catch (err) {
      this.log.warn(`hotswap connection: dropped a message from the daemon: ${String(err)}`);
      if (err instanceof ProtocolError && err.ename === "bad_signature" && refusedOurKey(frames)) {
        this.rejectAll(KEY_REFUSED);
      } else if (err instanceof ProtocolError && UNREADABLE.includes(err.ename)) {
        this.rejectParent(frames, err);
      }
      return;
    }
    const pending = msg.parent === null ? undefined : this.pending.get(msg.parent);
    if (pending !== undefined && msg.parent !== null) {
      this.settle(msg.parent, pending, msg);
    } else if (msg.type === "error" && msg.parent === null) {
      this.rejectAll(msg); // the daemon could not read a request of ours (key, clock, version)
    } else if (MESSAGE_TYPES[msg.type as keyof typeof MESSAGE_TYPES]?.kind === "event") {
      this.events.emit(msg.type, msg.body, msg);
    } else {
      this.log.debug(`hotswap connection: late ${msg.type} (its request had timed out)`);
    }
  }

  private settle(id: string, pending: Pending, msg: Message): void {
    clearTimeout(pending.timer);
    this.pending.delete(id);
    if (msg.type === "error") {
      pending.reject(errorOf(msg));
    } else {
      pending.resolve(msg);
    }
  }

  /**
   * A signed reply that does not fit our protocol (a daemon of another release): its request
   * fails now, with the reason, instead of at its timeout.
   */
  private rejectParent(frames: Buffer[], err: ProtocolError): void {
    const msg = peek(frames);
    if (msg?.type === "error" && msg.parent === null) {
      // The daemon could not read our request at all (another major version refuses the
      // envelope) and said so before knowing its id: every pending request gets the reason.
      this.rejectAll(err);
      return;
    }
    const parent = msg?.parent;
    const pending = typeof parent === "string" ? this.pending.get(parent) : undefined;
    if (pending !== undefined && typeof parent === "string") {
      clearTimeout(pending.timer);
      this.pending.delete(parent);
      pending.reject(err);
    }
  }

  private rejectAll(msg: Message | DaemonError | ProtocolError): void {
    const error = msg instanceof DaemonError || msg instanceof ProtocolError ? msg : errorOf(msg);
    this.log.warn(`hotswap connection: the daemon refused a request: ${error.message}`);
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(error);
      this.pending.delete(id);
    }
  }
}

/** A daemon whose connection file names a CURVE server key gets our key pair (curve.ts). */
function curveOptions(connection: ConnectionInfo): { curveServerKey?: string; curvePublicKey?: string; curveSecretKey?: string } {
  if (!connection.curve_server_key) {
    return {};
  }
  const pair = clientKeyPair();
  return { curveServerKey: connection.curve_server_key, curvePublicKey: pair.public, curveSecretKey: pair.secret };
}

const KEY_REFUSED = new DaemonError(
  "bad_signature",
  "the daemon refused this window's signature: the key in its connection file is not the one this window read",
  "the daemon has probably restarted: restart the backend connection",
);

/** Why a message whose signature was verified can still not be read: it is not our protocol. */
const UNREADABLE = ["malformed", "unknown_type", "version_mismatch"];

/**
 * With the wrong key we cannot verify the daemon's refusal either; its unsigned content is
 * trusted only to fail at once with the right explanation instead of after a timeout.
 */
function refusedOurKey(frames: Buffer[]): boolean {
  const msg = peek(frames);
  const body = msg?.body as Partial<Bodies["error"]> | undefined;
  return msg?.type === "error" && msg.parent === null && body?.ename === "bad_signature";
}

/** The envelope of a message that did not pass validation, as far as it decodes. */
function peek(frames: Buffer[]): Partial<Message> | undefined {
  try {
    const msg = decode(frames[1]);
    return typeof msg === "object" && msg !== null ? (msg as Partial<Message>) : undefined;
  } catch {
    return undefined;
  }
}

function errorOf(msg: Message): DaemonError {
  const body = msg.body as unknown as Bodies["error"];
  return new DaemonError(body.ename, body.evalue, body.hint ?? "");
}
