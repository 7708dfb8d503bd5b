/**
 * Starts a real `switchboard all` on ephemeral ports serving the built
 * client, and waits for its `READY <edge url>` line (with a deadline).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { createInterface } from "node:readline";

const CLIENT_DIR = resolve(import.meta.dirname, "..", "..");
export const OUT_DIR = resolve(CLIENT_DIR, "out");
export const RESULTS_DIR = resolve(CLIENT_DIR, "test-results");

export interface Stack {
  edge: string;
  /** Each service's URL from its `LISTEN <name> <url>` line (auth, signal, health, edge). */
  services: Record<string, string>;
  proc: ChildProcess;
  /** Log lines seen so far (stdout and stderr), for failure reports. */
  logs: string[];
  /** SIGTERM, then SIGKILL after 20 s. */
  stop(): Promise<void>;
  /** SIGKILL at once (a crash): no drain, no close frames. */
  kill(): Promise<void>;
}

export interface StackOptions {
  readyTimeoutMs?: number;
  /** The edge's address, e.g. "127.0.0.1:40123" to restart on the same port. */
  edgeListen?: string;
}

export function binaryPath(): string {
  return resolve(CLIENT_DIR, process.env.SWITCHBOARD_BIN ?? "../target/debug/switchboard");
}

export async function startStack({ readyTimeoutMs = 30_000, edgeListen = "127.0.0.1:0" }: StackOptions = {}): Promise<Stack> {
  const bin = binaryPath();
  if (!existsSync(bin)) throw new Error(`switchboard binary not found at ${bin} (set SWITCHBOARD_BIN)`);
  if (!existsSync(resolve(OUT_DIR, "index.html"))) throw new Error(`no build in ${OUT_DIR}: run npm run build`);
  const proc = spawn(
    bin,
    [
      "all",
      "--edge-listen", edgeListen,
      "--auth-listen", "127.0.0.1:0",
      "--signal-listen", "127.0.0.1:0",
      "--health-listen", "127.0.0.1:0",
      "--static-dir", OUT_DIR,
    ],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } },
  );
  const logs: string[] = [];
  const services: Record<string, string> = {};
  createInterface({ input: proc.stderr! }).on("line", (l) => {
    logs.push(l);
    if (logs.length > 2000) logs.shift();
  });
  const exited = new Promise<number | null>((res) => proc.once("exit", (code) => res(code)));

  const edge = await new Promise<string>((resolveReady, reject) => {
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`switchboard did not print READY within ${readyTimeoutMs} ms:\n${logs.slice(-30).join("\n")}`));
    }, readyTimeoutMs);
    createInterface({ input: proc.stdout! }).on("line", (line) => {
      logs.push(line);
      const listen = /^LISTEN (\S+) (\S+)/.exec(line);
      if (listen?.[1] && listen[2]) services[listen[1]] = listen[2];
      const m = /^READY (\S+)/.exec(line);
      if (m?.[1]) {
        clearTimeout(timer);
        resolveReady(m[1]);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`switchboard exited with ${code} before READY:\n${logs.slice(-30).join("\n")}`));
    });
  });

  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      const killer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
      await exited;
      clearTimeout(killer);
    })();
    return stopped;
  };
  const kill = async (): Promise<void> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill("SIGKILL");
    await exited;
  };
  return { edge, services, proc, logs, stop, kill };
}
