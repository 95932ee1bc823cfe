// Audio capture: the microphone as 16 kHz PCM16 through an AudioWorklet.

// An AudioWorklet that turns the microphone into 16 kHz PCM16, posted in 100 ms buffers.
const WORKLET = `
class ParleyPcm16 extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / ${PCM_RATE};
    this.pos = 0; this.next = this.step; this.sum = 0; this.count = 0;
    this.out = new Int16Array(${PCM_RATE / 10}); this.n = 0;
    this.port.onmessage = () => this.flush();
  }
  flush() {
    if (this.n) this.port.postMessage(this.out.slice(0, this.n).buffer);
    this.n = 0;
  }
  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    for (let i = 0; i < input.length; i++) {
      this.sum += input[i]; this.count += 1; this.pos += 1;
      if (this.pos >= this.next) {
        const s = Math.max(-1, Math.min(1, this.sum / this.count));
        this.out[this.n++] = s < 0 ? s * 32768 : s * 32767;
        this.sum = 0; this.count = 0; this.next += this.step;
        if (this.n === this.out.length) {
          this.port.postMessage(this.out.buffer, [this.out.buffer]);
          this.out = new Int16Array(${PCM_RATE / 10}); this.n = 0;
        }
      }
    }
    return true;
  }
}
registerProcessor("parley-pcm16", ParleyPcm16);
`;

/** The microphone: AudioWorklet to PCM16 16 kHz, else MediaRecorder WebM/Opus. */
class Mic {
  constructor(onAudio) {
    this.onAudio = onAudio;
    this.stream = null;
    this.ctx = null;
    this.node = null;
    this.recorder = null;
  }

  static supported() {
    return !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  }

  /** Start capturing; resolves to the format announced in start_listening. */
  async start() {
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (Ctx && window.AudioWorkletNode) {
      try {
        this.ctx = new Ctx();
        const url = URL.createObjectURL(new Blob([WORKLET], { type: "text/javascript" }));
        try {
          await this.ctx.audioWorklet.addModule(url);
        } finally {
          URL.revokeObjectURL(url);
        }
        const source = this.ctx.createMediaStreamSource(this.stream);
        this.node = new AudioWorkletNode(this.ctx, "parley-pcm16");
        this.node.port.onmessage = (event) => this.onAudio(event.data);
        source.connect(this.node);
        if (this.ctx.state === "suspended") await this.ctx.resume();
        return { format: "pcm16", sample_rate: PCM_RATE };
      } catch (_) {
        if (this.ctx) this.ctx.close().catch(() => {});
        this.ctx = null;
        this.node = null; // fall through to MediaRecorder (e.g. a page CSP refusing blob:)
      }
    }
    const type = ["audio/webm;codecs=opus", "audio/webm"].find(
      (t) => window.MediaRecorder && MediaRecorder.isTypeSupported(t),
    );
    if (!type) {
      this.stop();
      throw new Error("unsupported");
    }
    this.recorder = new MediaRecorder(this.stream, { mimeType: type });
    this.recorder.ondataavailable = async (event) => {
      if (event.data && event.data.size) this.onAudio(await event.data.arrayBuffer());
    };
    this.recorder.start(250);
    return { format: "webm" };
  }

  stop() {
    if (this.node) {
      this.node.port.postMessage("flush");
      this.node.disconnect();
    }
    if (this.recorder && this.recorder.state !== "inactive") this.recorder.stop();
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    const ctx = this.ctx;
    if (ctx) setTimeout(() => ctx.close().catch(() => {}), 200);
    this.stream = this.ctx = this.node = this.recorder = null;
  }
}
