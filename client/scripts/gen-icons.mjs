// Draws the app icons (PNG) without any image library or download: a
// rounded indigo square with a three-node mesh, rasterised from signed
// distance functions with 4x4 supersampling. Run once; the PNGs are
// committed under public/icons/. Usage: node scripts/gen-icons.mjs
import { deflateSync } from "node:zlib";
import { mkdirSync, writeFileSync } from "node:fs";

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
function png(size, rgba) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  const raw = Buffer.alloc((size * 4 + 1) * size);
  for (let y = 0; y < size; y++) {
    raw[y * (size * 4 + 1)] = 0;
    rgba.copy(raw, y * (size * 4 + 1) + 1, y * size * 4, (y + 1) * size * 4);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw, { level: 9 })),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

const sdRoundRect = (x, y, half, r) => {
  const qx = Math.abs(x) - half + r;
  const qy = Math.abs(y) - half + r;
  return Math.hypot(Math.max(qx, 0), Math.max(qy, 0)) + Math.min(Math.max(qx, qy), 0) - r;
};
const sdSegment = (px, py, ax, ay, bx, by) => {
  const pax = px - ax, pay = py - ay, bax = bx - ax, bay = by - ay;
  const h = Math.max(0, Math.min(1, (pax * bax + pay * bay) / (bax * bax + bay * bay)));
  return Math.hypot(pax - bax * h, pay - bay * h);
};

/** Coordinates are in [-1, 1]. `maskable` keeps the glyph in the safe zone and fills the square. */
function draw(size, { maskable }) {
  const out = Buffer.alloc(size * size * 4);
  const scale = maskable ? 0.62 : 0.78;
  const nodes = [
    [0, -0.5],
    [-0.5, 0.38],
    [0.5, 0.38],
  ].map(([x, y]) => [x * scale, y * scale + 0.02]);
  const S = 4;
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      let bg = 0, fg = 0, gy = 0;
      for (let sy = 0; sy < S; sy++) {
        for (let sx = 0; sx < S; sx++) {
          const x = ((px + (sx + 0.5) / S) / size) * 2 - 1;
          const y = ((py + (sy + 0.5) / S) / size) * 2 - 1;
          const inBg = maskable ? true : sdRoundRect(x, y, 0.92, 0.4) <= 0;
          if (!inBg) continue;
          bg++;
          gy += y;
          let d = Infinity;
          for (const [nx, ny] of nodes) d = Math.min(d, Math.hypot(x - nx, y - ny) - 0.17 * scale);
          for (let i = 0; i < 3; i++) {
            const [ax, ay] = nodes[i];
            const [bx, by] = nodes[(i + 1) % 3];
            d = Math.min(d, sdSegment(x, y, ax, ay, bx, by) - 0.045 * scale);
          }
          if (d <= 0) fg++;
        }
      }
      const i = (py * size + px) * 4;
      if (bg === 0) continue;
      const t = (gy / bg + 1) / 2; // 0 top → 1 bottom
      // Indigo gradient #6366f1 → #4338ca.
      const br = 0x63 + (0x43 - 0x63) * t, bgc = 0x66 + (0x38 - 0x66) * t, bb = 0xf1 + (0xca - 0xf1) * t;
      const f = fg / bg;
      out[i] = Math.round(br + (255 - br) * f);
      out[i + 1] = Math.round(bgc + (255 - bgc) * f);
      out[i + 2] = Math.round(bb + (255 - bb) * f);
      out[i + 3] = Math.round((bg / (S * S)) * 255);
    }
  }
  return png(size, out);
}

mkdirSync("public/icons", { recursive: true });
for (const [name, size, maskable] of [
  ["icon-192.png", 192, false],
  ["icon-512.png", 512, false],
  ["maskable-512.png", 512, true],
  ["apple-touch-icon.png", 180, true],
]) {
  writeFileSync(`public/icons/${name}`, draw(size, { maskable }));
  console.log(`public/icons/${name}`);
}
