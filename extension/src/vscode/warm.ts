/** The warm objects of the backend: show them (key, type, size, device) and release them. */

import * as vscode from "vscode";
import { Backends } from "./backend";
import { formatBytes, formatParameters } from "../node/format";
import type { WarmEntry } from "../node/protocol";

interface WarmItem extends vscode.QuickPickItem {
  key: string;
}

export async function showWarm(backends: Backends): Promise<void> {
  const connection = await backends.current().connect();
  const status = await connection.transport.request("status", {});
  const items: WarmItem[] = status.workers.flatMap((worker) => worker.warm.map((entry) => warmItem(entry, worker.index)));
  if (items.length === 0) {
    void vscode.window.showInformationMessage(
      "Hot Swap: nothing is warm. A run that calls hotswap.warm(key, factory) keeps what the factory builds.",
    );
    return;
  }
  const picked = await vscode.window.showQuickPick(items, {
    title: "Hot Swap: warm objects",
    placeHolder: "Pick one to release it",
    matchOnDescription: true,
  });
  if (picked === undefined) {
    return;
  }
  const release = `Release ${picked.key}`;
  if ((await vscode.window.showWarningMessage(`Release the warm object ${picked.key}? The next run that needs it builds it again.`, release)) === release) {
    const reply = await connection.transport.request("release", { keys: [picked.key] });
    void vscode.window.showInformationMessage(`Hot Swap: released ${reply.released.join(", ") || "nothing"}.`);
  }
}

function warmItem(entry: WarmEntry, worker: number): WarmItem {
  const details = [
    formatParameters(entry.parameters),
    entry.build_seconds === undefined ? "" : `built in ${entry.build_seconds.toFixed(1)} s`,
    entry.hits === undefined ? "" : `reused ${entry.hits}×`,
    `worker ${worker}`,
  ];
  return {
    key: entry.key,
    label: entry.key,
    description: `${entry.type} · ${formatBytes(entry.bytes)} · ${entry.device ?? "no device"}`,
    detail: details.filter(Boolean).join(" · "),
  };
}

export async function releaseWarm(backends: Backends): Promise<void> {
  const connection = await backends.current().connect();
  const release = "Release All";
  const answer = await vscode.window.showWarningMessage(
    "Release every warm object? The next runs build them again.",
    { modal: true },
    release,
  );
  if (answer === release) {
    const reply = await connection.transport.request("release", { keys: null });
    void vscode.window.showInformationMessage(
      reply.released.length ? `Hot Swap: released ${reply.released.join(", ")}.` : "Hot Swap: nothing was warm.",
    );
  }
}
