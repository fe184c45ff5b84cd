/**
 * Starts `hotswap lsp`, the language server every editor uses, for each folder whose local backend
 * is connected: failed runs of any client in the Problems panel and as squiggles, lenses and
 * warm-object hovers, from the one implementation in backend/lsp*.py.
 */

import * as vscode from "vscode";
import { LanguageClient, type LanguageClientOptions, type ServerOptions } from "vscode-languageclient/node";
import type { Backends, Connection } from "./backend";
import { guard } from "./errors";
import { findInterpreter } from "./python";
import { readSettings } from "./settings";

/** The server's lens commands, as this extension names them (it runs in its terminal). */
const LENS_COMMANDS: Record<string, string> = {
  "hotswap.run": "hotswap.run",
  "hotswap.debug": "hotswap.debug",
  "hotswap.status": "hotswap.statusMenu",
};

export class LanguageServers implements vscode.Disposable {
  private readonly clients = new Map<string, LanguageClient>();
  private readonly subscriptions: vscode.Disposable[] = [];

  constructor(
    backends: Backends,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.subscriptions.push(
      backends.onDidCreate((backend) => {
        this.subscriptions.push(
          backend.onDidChange((connection) => {
            if (connection !== undefined && !connection.remote) {
              void guard(this.log, "starting the Hot Swap language server", () => this.start(connection));
            }
          }),
        );
      }),
    );
  }

  private async start(connection: Connection): Promise<void> {
    const key = connection.folder.uri.toString();
    if (this.clients.has(key)) {
      return;
    }
    const folder = connection.folder;
    const python = await findInterpreter(folder.uri, readSettings(folder.uri), this.log);
    const server: ServerOptions = {
      command: python.path,
      args: ["-m", "hotswap", "lsp", "--workspace", connection.root],
      options: { cwd: connection.root },
    };
    const client = new LanguageClient("hotswap", "Hot Swap language server", server, clientOptions(folder, this.log));
    this.clients.set(key, client);
    this.log.info(`starting ${python.path} -m hotswap lsp --workspace ${connection.root}`);
    await client.start();
  }

  dispose(): void {
    this.subscriptions.forEach((s) => s.dispose());
    this.clients.forEach((client) => void client.stop());
    this.clients.clear();
  }
}

function clientOptions(folder: vscode.WorkspaceFolder, log: vscode.LogOutputChannel): LanguageClientOptions {
  return {
    documentSelector: [{ scheme: "file", language: "python" }],
    workspaceFolder: folder,
    outputChannel: log,
    // This extension has its own hotswap.* commands and starts the daemon on the first run.
    initializationOptions: { executeCommands: false, startDaemon: false },
    middleware: {
      provideCodeLenses: async (document, token, next) => {
        const lenses = await next(document, token);
        return lenses?.map(toExtensionCommand);
      },
    },
  };
}

function toExtensionCommand(lens: vscode.CodeLens): vscode.CodeLens {
  const command = lens.command;
  if (command === undefined) {
    return lens;
  }
  const args = (command.arguments ?? []).map((a: unknown) => (typeof a === "string" ? vscode.Uri.parse(a) : a));
  lens.command = { ...command, command: LENS_COMMANDS[command.command] ?? command.command, arguments: args };
  return lens;
}
