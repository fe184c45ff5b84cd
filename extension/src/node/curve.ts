/**
 * This client's CURVE key pair for a daemon reachable from elsewhere, read from the files
 * `hotswap keys new NAME` writes, as the CLI reads them (backend/curve.py). No vscode here.
 */

import { readFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export interface CurvePair {
  public: string;
  secret: string;
}

/** `$XDG_CONFIG_HOME/hotswap/keys` (default `~/.config/hotswap/keys`). */
export function keysDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || path.join(os.homedir(), ".config");
  return path.join(base, "hotswap", "keys");
}

/** The pair HOTSWAP_CURVE_KEY names (`client` if unset); an Error saying how to make it. */
export function clientKeyPair(env: NodeJS.ProcessEnv = process.env): CurvePair {
  const name = env.HOTSWAP_CURVE_KEY || "client";
  const file = path.join(keysDir(env), `${name}.json`);
  try {
    const pair = JSON.parse(readFileSync(file, "utf8")) as Partial<CurvePair>;
    if (typeof pair.public === "string" && typeof pair.secret === "string") {
      return { public: pair.public, secret: pair.secret };
    }
  } catch {
    // missing or unreadable: said below
  }
  throw new Error(
    `the daemon requires CURVE and there is no key pair '${name}' in ${keysDir(env)}: make one with \`hotswap keys new ${name}\` and have the daemon --allow its public key (HOTSWAP_CURVE_KEY names another pair)`,
  );
}
