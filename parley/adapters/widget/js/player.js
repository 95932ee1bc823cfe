// Playback: spoken replies (PCM16 chunks) through Web Audio, in order.

/** Plays PCM16 reply chunks in arrival order, gap-free, through Web Audio. */
class Player {
  constructor(stats, onChange) {
    this.stats = stats;
    this.onChange = onChange;
    this.ctx = null;
    this.next = 0;
    this.live = new Set(); // scheduled sources
    this.cancelled = new Set(); // message ids whose audio is dropped
    this.carry = new Map(); // message id -> odd trailing byte
    this.heard = new Map(); // message id -> indexes of sentences with audio played
  }

  /** Create or resume the AudioContext (call from a user gesture where possible). */
  unlock() {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return null;
    if (!this.ctx) this.ctx = new Ctx();
    if (this.ctx.state === "suspended") this.ctx.resume().catch(() => {});
    return this.ctx;
  }

  get playing() {
    return this.live.size > 0;
  }

  playingIds() {
    return [...new Set([...this.live].map((source) => source.messageId))];
  }

  /** How many of a message's sentences were (at least partly) played. */
  playedSentences(id) {
    const heard = this.heard.get(normId(id));
    return heard ? heard.size : 0;
  }

  /** A binary frame: 16 bytes message id, u16 sentence, u16 chunk (big-endian), audio. */
  frame(buffer, format) {
    if (!(buffer instanceof ArrayBuffer) || buffer.byteLength < 20) return;
    const view = new DataView(buffer);
    const id = uuidFromBytes(new Uint8Array(buffer, 0, 16));
    const sentence = view.getUint16(16);
    const chunk = view.getUint16(18);
    this.stats.receivedChunks += 1;
    if (this.cancelled.has(id)) return;
    this.play(id, new Uint8Array(buffer, 20), format, sentence, chunk);
  }

  play(id, bytes, format, sentence, chunk) {
    const match = /^pcm_(\d+)$/.exec(format || "");
    const ctx = this.unlock();
    if (!match || !ctx) return;
    const rate = Number(match[1]);
    let data = bytes;
    const carried = this.carry.get(id);
    if (carried) {
      data = new Uint8Array(bytes.length + 1);
      data[0] = carried;
      data.set(bytes, 1);
      this.carry.delete(id);
    }
    if (data.length % 2) {
      this.carry.set(id, data[data.length - 1]);
      data = data.subarray(0, data.length - 1);
    }
    const samples = data.length / 2;
    if (!samples) return;
    const view = new DataView(data.buffer, data.byteOffset, data.length);
    const audio = ctx.createBuffer(1, samples, rate);
    const out = audio.getChannelData(0);
    for (let i = 0; i < samples; i++) out[i] = view.getInt16(i * 2, true) / 32768;
    const source = ctx.createBufferSource();
    source.buffer = audio;
    source.connect(ctx.destination);
    const at = Math.max(this.next, ctx.currentTime + 0.03);
    this.next = at + audio.duration;
    source.messageId = id;
    source.onended = () => {
      this.live.delete(source);
      if (!source.stopped) {
        if (!this.heard.has(id)) this.heard.set(id, new Set());
        this.heard.get(id).add(sentence);
        if (this.heard.size > 200) this.heard.delete(this.heard.keys().next().value);
        this.stats.playedChunks += 1;
        this.stats.played.push([id, sentence, chunk]);
        if (this.stats.played.length > 2000) this.stats.played.splice(0, 1000);
      }
      this.onChange();
    };
    this.live.add(source);
    source.start(at);
    this.stats.scheduledChunks += 1;
    this.onChange();
  }

  /** Stop one message's audio now and ignore its later chunks. */
  cancel(id) {
    this.cancelled.add(normId(id));
    for (const source of [...this.live]) if (source.messageId === normId(id)) this.halt(source);
    this.onChange();
  }

  /** Stop everything playing or scheduled (barge-in, the stop button). */
  stopAll() {
    for (const source of [...this.live]) {
      this.cancelled.add(source.messageId);
      this.halt(source);
    }
    if (this.ctx) this.next = this.ctx.currentTime;
    this.onChange();
  }

  halt(source) {
    source.stopped = true;
    this.stats.stoppedChunks += 1;
    this.live.delete(source);
    try {
      source.stop();
    } catch (_) {
      /* not started yet */
    }
  }

  close() {
    this.stopAll();
    if (this.ctx) this.ctx.close().catch(() => {});
    this.ctx = null;
  }
}
