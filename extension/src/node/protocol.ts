/**
 * hotswap's wire protocol as the extension speaks it: the declarations (protocolSpec.ts,
 * bodies.ts), validation as backend/protocol.py does it, and the errors. No vscode, no zeromq.
 */

import type { Message } from "./bodies";
import { MESSAGE_TYPES, MessageSpec, PROTOCOL_MAJOR, PROTOCOL_VERSION, WireType } from "./protocolSpec";

export * from "./bodies";
export * from "./protocolSpec";

export class ProtocolError extends Error {
  constructor(
    readonly ename: string,
    message: string,
    readonly hint = "",
  ) {
    super(message);
    this.name = "ProtocolError";
  }
}

/** The daemon's `.hotswap/connection.json` (docs/protocol.md). */
export interface ConnectionInfo {
  address: string;
  key: string;
  pid: number;
  protocol_version: string;
  signature_scheme?: string;
  workspace?: string;
  started?: number;
}

/** The daemon answered a request with an `error`. */
export class DaemonError extends Error {
  constructor(
    readonly ename: string,
    readonly evalue: string,
    readonly hint = "",
  ) {
    super(hint ? `${evalue} (${hint})` : evalue);
    this.name = "DaemonError";
  }
}

/** No answer came in time, or the connection was closed while waiting. */
export class DaemonUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DaemonUnavailable";
  }
}

/** Throw ProtocolError("version_mismatch") unless `version` has our major version. */
export function checkVersion(version: unknown): void {
  const major = typeof version === "string" ? version.split(".")[0] : "";
  if (!/^\d+$/.test(major)) {
    throw new ProtocolError("version_mismatch", `bad protocol version ${String(version)}`);
  }
  if (Number(major) !== PROTOCOL_MAJOR) {
    throw new ProtocolError(
      "version_mismatch",
      `protocol version mismatch: the daemon speaks ${String(version)}, this extension speaks ${PROTOCOL_VERSION}`,
      "install the same hotswap release as the extension, then restart the backend",
    );
  }
}

const ENVELOPE: Record<string, readonly WireType[]> = {
  v: ["str"],
  id: ["str"],
  type: ["str"],
  ts: ["int", "float"],
  parent: ["str", "none"],
  body: ["dict"],
};

/** Check an envelope and its body against MESSAGE_TYPES, as backend/protocol.py does. */
export function validate(msg: unknown): Message {
  if (!isMap(msg)) {
    throw new ProtocolError("malformed", "a message must be a map");
  }
  for (const [name, types] of Object.entries(ENVELOPE)) {
    if (!(name in msg)) {
      throw new ProtocolError("malformed", `message lacks the envelope field '${name}'`);
    }
    if (!isOfType(msg[name], types)) {
      throw new ProtocolError("malformed", `envelope field '${name}' has the wrong type`);
    }
  }
  checkVersion(msg.v);
  const spec: MessageSpec | undefined = (MESSAGE_TYPES as Record<string, MessageSpec>)[msg.type as string];
  if (spec === undefined) {
    throw new ProtocolError("unknown_type", `unknown message type '${String(msg.type)}'`);
  }
  const body = msg.body as Record<string, unknown>;
  for (const [name, field] of Object.entries(spec.fields)) {
    if (!(name in body)) {
      if (field.required) {
        throw new ProtocolError("malformed", `${String(msg.type)}: missing field '${name}'`);
      }
      continue;
    }
    if (!isOfType(body[name], field.types)) {
      throw new ProtocolError(
        "malformed",
        `${String(msg.type)}: field '${name}' must be ${field.types.join(" or ")}`,
      );
    }
  }
  return msg as unknown as Message;
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

function isOfType(value: unknown, types: readonly WireType[]): boolean {
  return types.some((type) => isWireType(value, type));
}

function isWireType(value: unknown, type: WireType): boolean {
  switch (type) {
    case "str":
      return typeof value === "string";
    case "int":
      return typeof value === "number" && Number.isInteger(value);
    case "float":
      return typeof value === "number";
    case "bool":
      return typeof value === "boolean";
    case "list":
      return Array.isArray(value);
    case "dict":
      return isMap(value);
    case "bytes":
      return value instanceof Uint8Array;
    case "none":
      return value === null;
  }
}
