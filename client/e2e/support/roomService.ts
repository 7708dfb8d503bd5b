/**
 * The application's backend, for tests: RoomService calls over gRPC to a
 * `switchboard all` started by stack.ts, with a backend token minted by the
 * same binary (`switchboard token --admin --remote`, as
 * scripts/grpcurl-check.sh does).
 *
 * No grpcurl and no generated code: the messages come from the one schema
 * (proto/switchboard/v1/room.proto, compiled to a descriptor set by the buf
 * the client already has), requests are written in the proto's JSON
 * mapping as docs/api.md shows them, and a unary call is one HTTP/2 POST
 * with length-prefixed frames (the gRPC wire format).
 */
import { execFile } from "node:child_process";
import { connect } from "node:http2";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { createFileRegistry, fromBinary, fromJson, toBinary, toJson, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { binaryPath, type Stack } from "./stack";

const run = promisify(execFile);
const CLIENT_DIR = resolve(import.meta.dirname, "..", "..");
const PROTO_DIR = resolve(CLIENT_DIR, "..", "proto");
const SERVICE = "switchboard.v1.RoomService";

/** The RoomService RPCs the tests use, with their request messages. */
const REQUESTS = {
  CreateRoom: "switchboard.v1.CreateRoomRequest",
  UpdateParticipant: "switchboard.v1.UpdateParticipantRequest",
  UpdateRoomMetadata: "switchboard.v1.UpdateRoomMetadataRequest",
  MoveParticipant: "switchboard.v1.MoveParticipantRequest",
  SendData: "switchboard.v1.SendDataRequest",
} as const;
type Rpc = keyof typeof REQUESTS;

/** A gRPC status other than OK. */
export class GrpcError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(`grpc status ${status}: ${message}`);
    this.name = "GrpcError";
  }
}

export interface RoomService {
  /** A room ahead of its first join, with its own limit and metadata (docs/api.md "Rooms"). */
  createRoom(req: { room: string; maxParticipants?: number; emptyTimeoutSeconds?: number; metadata?: string }): Promise<JsonValue>;
  /** Name, attributes or permissions of a live participant (docs/api.md "UpdateParticipant"). */
  updateParticipant(req: {
    room: string;
    identity: string;
    name?: string;
    replaceAttributes?: boolean;
    attributes?: Record<string, string>;
    permissions?: { publish: boolean };
  }): Promise<JsonValue>;
  updateRoomMetadata(req: { room: string; metadata: string }): Promise<JsonValue>;
  /** Moves a live participant to `destination`; its session continues there (docs/api.md "MoveParticipant"). */
  moveParticipant(req: { room: string; identity: string; destination: string }): Promise<JsonValue>;
  /** Data to some participants of a room (all when `identities` is empty); answers `{delivered, notFound?, duplicate?}` (docs/api.md "SendData"). */
  sendData(req: { room: string; identities?: string[]; topic: string; payload: string; idempotencyKey?: string }): Promise<JsonValue>;
}

/** The schema, compiled by buf into a descriptor set, as a registry. */
async function registry() {
  const dir = mkdtempSync(join(tmpdir(), "sb-proto-"));
  try {
    const out = join(dir, "room.binpb");
    const buf = resolve(CLIENT_DIR, "node_modules", ".bin", "buf");
    await run(buf, ["build", PROTO_DIR, "--path", join(PROTO_DIR, "switchboard/v1/room.proto"), "-o", out]);
    return createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(out)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `switchboard token ... --remote`: a token from the stack's auth service (dev mode). */
async function mint(stack: Stack, args: string[]): Promise<string> {
  const auth = stack.services.auth;
  if (!auth) throw new Error("the stack printed no LISTEN auth line");
  const { stdout } = await run(binaryPath(), ["token", ...args, "--remote", "--auth-url", auth]);
  return stdout.trim();
}

/** A token with every backend grant. */
function backendToken(stack: Stack): Promise<string> {
  return mint(stack, ["--identity", "e2e-backend", "--room", "*", "--admin"]);
}

/**
 * A participant's token without the publish grant (a viewer): what a
 * backend hands out and the dev endpoint never does.
 */
export function viewerToken(stack: Stack, p: { identity: string; room: string; name: string }): Promise<string> {
  return mint(stack, ["--identity", p.identity, "--room", p.room, "--name", p.name, "--no-publish"]);
}

/** One unary call: a length-prefixed request, a length-prefixed answer, the status in trailers. */
function unary(url: string, path: string, token: string, body: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolveCall, reject) => {
    const session = connect(url);
    session.on("error", reject);
    const req = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      authorization: `Bearer ${token}`,
    });
    const chunks: Buffer[] = [];
    let status: string | undefined;
    let message = "";
    const note = (h: Record<string, unknown>) => {
      if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]);
      if (h["grpc-message"] !== undefined) message = decodeURIComponent(String(h["grpc-message"]));
    };
    req.on("response", note); // a trailers-only answer (an error) carries the status here
    req.on("trailers", note);
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("error", reject);
    req.on("end", () => {
      session.close();
      if (status !== "0") {
        reject(new GrpcError(Number(status ?? -1), message || "no grpc-status"));
        return;
      }
      const all = Buffer.concat(chunks);
      if (all.length < 5) {
        reject(new Error("grpc: answer without a message"));
        return;
      }
      resolveCall(all.subarray(5, 5 + all.readUInt32BE(1)));
    });
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1); // byte 0: not compressed
    frame.set(body, 5);
    req.end(frame);
  });
}

/** RoomService of the stack's signal service, called as its backend would. */
export async function roomService(stack: Stack): Promise<RoomService> {
  const signal = stack.services.signal;
  if (!signal) throw new Error("the stack printed no LISTEN signal line");
  const [types, token] = await Promise.all([registry(), backendToken(stack)]);
  const service = types.getService(SERVICE);
  if (!service) throw new Error(`${SERVICE} is not in the schema`);
  const call = async (rpc: Rpc, json: JsonObject): Promise<JsonValue> => {
    const method = service.methods.find((m) => m.name === rpc);
    const input = types.getMessage(REQUESTS[rpc]);
    if (!method || !input || method.input.typeName !== input.typeName) throw new Error(`${SERVICE}/${rpc} is not in the schema`);
    const answer = await unary(signal, `/${SERVICE}/${rpc}`, token, toBinary(input, fromJson(input, json)));
    return toJson(method.output, fromBinary(method.output, answer));
  };
  return {
    createRoom: (req) => call("CreateRoom", { ...req }),
    updateParticipant: (req) => call("UpdateParticipant", { ...req }),
    updateRoomMetadata: (req) => call("UpdateRoomMetadata", { ...req }),
    moveParticipant: (req) => call("MoveParticipant", { ...req }),
    sendData: (req) => call("SendData", { ...req }),
  };
}
