/**
 * The protocol's stable error codes (docs/protocol.md §8) as the generated
 * `ErrorCode` enum, and their names as the protocol writes them. The value
 * names in the proto are those strings ("not_found"), so JSON frames carry
 * them unchanged and close reasons start with them; nothing here restates
 * the table, it is read from the enum's descriptor.
 */
import { ErrorCode, ErrorCodeSchema } from "./gen/switchboard/v1/client_pb.ts";

const byName: ReadonlyMap<string, ErrorCode> = new Map(
  ErrorCodeSchema.values
    .filter((v) => v.number !== ErrorCode.error_code_unspecified)
    .map((v) => [v.name, v.number as ErrorCode]),
);

/**
 * The code whose stable name is `name` (e.g. "not_found" →
 * `ErrorCode.not_found`); undefined for a name that is not a code this
 * client knows (a newer server's, or none at all).
 */
export function errorCodeFromName(name: string): ErrorCode | undefined {
  return byName.get(name);
}

/**
 * The stable name of a code, as the protocol writes it ("not_found"); ""
 * for `error_code_unspecified` (a frame without a code, or with one this
 * client does not know) and for a number outside the enum.
 */
export function errorCodeName(code: ErrorCode): string {
  if (code === ErrorCode.error_code_unspecified) return "";
  return ErrorCodeSchema.value[code]?.name ?? "";
}
