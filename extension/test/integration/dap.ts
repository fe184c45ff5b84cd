/**
 * The little of the Debug Adapter Protocol the integration test needs: attach to debugpy the
 * way VS Code does with the configuration debug.ts builds, then let the script go.
 */

import { Socket, connect } from "node:net";

interface DapMessage {
  type: string;
  seq: number;
  command?: string;
  event?: string;
  request_seq?: number;
  success?: boolean;
  message?: string;
  body?: Record<string, unknown>;
}

export class DapClient {
  private buffer = Buffer.alloc(0);
  private seq = 1;
  private readonly waiters: Array<{ match: (m: DapMessage) => boolean; resolve: (m: DapMessage) => void }> = [];
  private readonly seen: DapMessage[] = [];

  private constructor(private readonly socket: Socket) {
    socket.on("data", (data) => this.receive(data));
  }

  static open(host: string, port: number): Promise<DapClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, host, () => resolve(new DapClient(socket)));
      socket.once("error", reject);
    });
  }

  send(command: string, args?: Record<string, unknown>): number {
    const seq = this.seq++;
    const data = Buffer.from(JSON.stringify({ seq, type: "request", command, arguments: args }));
    this.socket.write(Buffer.concat([Buffer.from(`Content-Length: ${data.length}\r\n\r\n`), data]));
    return seq;
  }

  response(seq: number): Promise<DapMessage> {
    return this.wait((m) => m.type === "response" && m.request_seq === seq);
  }

  event(name: string): Promise<DapMessage> {
    return this.wait((m) => m.type === "event" && m.event === name);
  }

  /** initialize, attach (answered after configurationDone), initialized, configurationDone. */
  async attach(configuration: Record<string, unknown>): Promise<DapMessage> {
    await this.response(this.send("initialize", { clientID: "hotswap-ext-tests", adapterID: "hotswap", pathFormat: "path", linesStartAt1: true, columnsStartAt1: true }));
    const attached = this.send("attach", configuration);
    await this.event("initialized");
    await this.response(this.send("configurationDone"));
    return this.response(attached);
  }

  close(): void {
    this.socket.destroy();
  }

  private wait(match: (m: DapMessage) => boolean): Promise<DapMessage> {
    const found = this.seen.findIndex(match);
    if (found >= 0) {
      return Promise.resolve(this.seen.splice(found, 1)[0]);
    }
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }

  private receive(data: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, data]);
    for (;;) {
      const end = this.buffer.indexOf("\r\n\r\n");
      const length = Number(/Content-Length: (\d+)/i.exec(this.buffer.subarray(0, end).toString())?.[1]);
      if (end < 0 || this.buffer.length < end + 4 + length) {
        return;
      }
      const message = JSON.parse(this.buffer.subarray(end + 4, end + 4 + length).toString()) as DapMessage;
      this.buffer = this.buffer.subarray(end + 4 + length);
      const waiter = this.waiters.findIndex((w) => w.match(message));
      if (waiter >= 0) {
        this.waiters.splice(waiter, 1)[0].resolve(message);
      } else {
        this.seen.push(message);
      }
    }
  }
}
