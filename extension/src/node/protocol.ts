/**
 * hotswap's wire protocol as the extension speaks it: the declarations (protocolSpec.ts, generated
 * from backend/protocol.py; bodies.ts), validation as Python does it, and errors. No vscode, no zeromq.
 */

import type { Message } from "./bodies";
import { MESSAGE_TYPES, PROTOCOL_VERSION, RECORDS } from "./protocolSpec";

export * from "./bodies";
export * from "./protocolSpec";

export const PROTOCOL_MAJOR = Number(PROTOCOL_VERSION.split(".")[0]);

/** Python type names as backend/protocol.py declares them ("none" is NoneType). */
export type WireType = "str" | "int" | "float" | "bool" | "list" | "dict" | "bytes" | "none";
export type MessageKind = "request" | "reply" | "event";
export type RecordName = keyof typeof RECORDS;

/** A field: its wire types, and the record its map value (`record`) or list items (`items`) are. */
export interface FieldSpec {
  readonly types: readonly WireType[];
  readonly required: boolean;
  readonly record: string | null;
  readonly items: string | null;
}

export interface MessageSpec {
  readonly kind: MessageKind;
  readonly fields: Readonly<Record<string, FieldSpec>>;
}

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
  /** The daemon's CURVE public key, when it listens where other hosts can reach it. */
  curve_server_key?: string;
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
  checkFields(String(msg.type), spec.fields, msg.body as Record<string, unknown>);
  return msg as unknown as Message;
}

/** Throw ProtocolError("malformed") naming the first field of `value` (at `where`) that is wrong. */
function checkFields(where: string, fields: Readonly<Record<string, FieldSpec>>, value: Record<string, unknown>): void {
  for (const [name, field] of Object.entries(fields)) {
    if (!(name in value)) {
      if (field.required) {
        throw new ProtocolError("malformed", `${where}: missing field '${name}'`);
      }
      continue;
    }
    const item = value[name];
    if (!isOfType(item, field.types)) {
      throw new ProtocolError("malformed", `${where}.${name} must be ${field.types.join(" or ")}`);
    }
    if (field.record !== null && isMap(item)) {
      checkFields(`${where}.${name}`, recordSpec(field.record), item);
    }
    if (field.items !== null && Array.isArray(item)) {
      const items = field.items;
      item.forEach((element, index) => {
        if (!isMap(element)) {
          throw new ProtocolError("malformed", `${where}.${name}[${index}] must be a map (${items})`);
        }
        checkFields(`${where}.${name}[${index}]`, recordSpec(items), element);
      });
    }
  }
}

function recordSpec(name: string): Readonly<Record<string, FieldSpec>> {
  return (RECORDS as Readonly<Record<string, Readonly<Record<string, FieldSpec>>>>)[name];
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
