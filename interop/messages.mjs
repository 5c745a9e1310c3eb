// The messages every interop check sends: text (with multi-byte characters, exactly `size`
// bytes of UTF-8) and binary (half pseudo-random and incompressible, half zeros) from 1 B to
// 1 MiB, the same shape as core/examples/echo_check.rs and websockets_client.py.

export const SIZES = [1, 125, 126, 1000, 65535, 65536, 300000, 1 << 20];

export function text(size) {
  const unit = 'wsengine interop \u2713 ';
  let out = '';
  let bytes = 0;
  outer: for (;;) {
    for (const c of unit) {
      const n = Buffer.byteLength(c);
      if (bytes + n > size) break outer;
      out += c;
      bytes += n;
    }
  }
  return out + 'x'.repeat(size - bytes);
}

export function binary(size) {
  const bytes = new Uint8Array(size);
  let state = (size | 1) >>> 0;
  for (let i = 0; i < size >> 1; i++) {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    bytes[i] = state & 0xff;
  }
  return bytes;
}
