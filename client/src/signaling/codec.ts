/**
 * Text-frame codec: a frame is the proto3 canonical JSON of a generated
 * message (lowerCamelCase fields, uint64 as strings, enums by name). The
 * types are generated from the proto into gen/ (`npm run gen`); nothing here
 * restates them.
 */
import { create, fromJsonString, toJsonString, type MessageInitShape } from "@bufbuild/protobuf";
import {
  ClientMessageSchema,
  ServerMessageSchema,
  type ClientMessage,
  type ServerMessage,
} from "./gen/switchboard/v1/client_pb.ts";

/** The edge closes the connection (1009) above this many bytes. */
export const MAX_FRAME_BYTES = 64 * 1024;

export type ClientMessageInit = MessageInitShape<typeof ClientMessageSchema>;

/** Thrown for a frame that would break the server's size limit. */
export class FrameTooLargeError extends Error {
  constructor(readonly bytes: number) {
    super(`frame of ${bytes} bytes exceeds ${MAX_FRAME_BYTES}`);
    this.name = "FrameTooLargeError";
  }
}

const utf8 = new TextEncoder();

/** Encodes a client message as a text frame, refusing oversize frames. */
export function encodeClientMessage(init: ClientMessageInit | ClientMessage): string {
  const msg = create(ClientMessageSchema, init as ClientMessageInit);
  const text = toJsonString(ClientMessageSchema, msg);
  const bytes = utf8.encode(text).byteLength;
  if (bytes > MAX_FRAME_BYTES) throw new FrameTooLargeError(bytes);
  return text;
}

/**
 * Parses a server text frame. Unknown fields are ignored so that a newer
 * server can add fields without breaking older clients.
 */
export function decodeServerMessage(text: string): ServerMessage {
  return fromJsonString(ServerMessageSchema, text, { ignoreUnknownFields: true });
}

/** Test helper and mirror of the server side: decode a client frame. */
export function decodeClientMessage(text: string): ClientMessage {
  return fromJsonString(ClientMessageSchema, text);
}

/** Test helper: encode a server message the way the edge does. */
export function encodeServerMessage(init: MessageInitShape<typeof ServerMessageSchema>): string {
  return toJsonString(ServerMessageSchema, create(ServerMessageSchema, init));
}
