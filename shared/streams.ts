/**
 * The bytes of a stream, at most `cap` of them: undefined, and the stream cancelled, as soon as it runs past (a chunked
 * body declares no length to check first). For bodies and answers from outside, which are read only this way.
 */
export async function readAtMost(stream: ReadableStream<Uint8Array> | null, cap: number): Promise<Buffer | undefined> {
  if (!stream) return Buffer.alloc(0);
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > cap) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}
