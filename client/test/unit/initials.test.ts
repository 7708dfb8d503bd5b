import { test } from "node:test";
import assert from "node:assert/strict";
import { initials } from "../../src/ui/identity";

test("initials: first and last word that start with a letter or digit", () => {
  assert.equal(initials("Alice"), "A");
  assert.equal(initials("Ada Lovelace"), "AL");
  assert.equal(initials("Bob (viewer)"), "BV", "a name the backend gave, with brackets");
  assert.equal(initials("ünal öz"), "ÜÖ");
  assert.equal(initials("  "), "?");
  assert.equal(initials("(x)"), "X");
});
