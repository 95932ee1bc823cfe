// Voice: the microphone turn-taking, interim transcripts, cutting a reply short.

/** The widget: voice in (microphone, interim text, barge-in) and out, over the rest. */
class Widget extends WidgetConversation {
  on_speech_started() {
    this.cutIn("speech");
  }

  on_transcription_update(f) {
    this.cutIn("speech");
    this.interimText(f.text || "");
  }

  /**
   * Barge-in. The server interrupts a reply it is still sending (``interrupted``, when the
   * template allows it); audio it has finished sending plays from our buffer, so that tail is
   * silenced here, and the server is told (``interrupt``) so that it stores the reply as
   * interrupted.
   */
  cutIn(cause) {
    const ids = this.player.playingIds();
    if (!ids.length || !ids.every((id) => this.audioDone.has(id))) return;
    this.interrupt(ids[ids.length - 1], cause);
    this.player.stopAll();
  }

  /** The stop button: stop the reply being written or spoken, here and on the server. */
  stopReply() {
    const streaming = this.items.filter((x) => x.role === "assistant" && !x.complete && x.id);
    const playing = this.player.playingIds();
    const target = streaming.length ? streaming[streaming.length - 1].id : playing[playing.length - 1];
    if (target) this.interrupt(target, "stop");
    this.player.stopAll();
    this.input.focus();
  }

  interrupt(id, cause) {
    const data = { message_id: id, cause };
    if (this.audioOn || this.player.playedSentences(id)) data.played_sentences = this.player.playedSentences(id);
    this.link.send({ type: "interrupt", data });
  }

  on_transcription_finished(f) {
    this.interimText("");
    const text = (f.text || "").trim();
    if (!text) return;
    const item = this.newItem({ role: "user", text, state: "sent", voice: true });
    this.inFlight.push(item);
    this.add(item);
  }

  on_audio_complete(f) {
    this.audioDone.add(normId(f.message_id));
    this.refreshControls();
  }

  /** The server says whether replies are spoken, and in which format. */
  on_audio_format(f) {
    if (f.output_format) this.audioFormat = f.output_format;
    if (typeof f.enabled === "boolean") this.audioOn = f.enabled;
  }

  on_listening_stopped(f) {
    // The server ended it (the provider closed, an error): show the microphone as off.
    if (this.listening && f.reason !== "stopped") this.stopMic(false);
  }

  interimText(text) {
    this.interim.hidden = !text && !this.listening;
    this.interim.textContent = text || (this.listening ? this.s.listening : "");
  }

  async toggleMic() {
    if (this.listening) return this.stopMic(true);
    this.player.unlock();
    if (!Mic.supported()) return this.note(this.s.errors.voiceUnsupported, { error: true });
    if (!this.link.open) return this.say(this.s.offline, "offline");
    this.mic = new Mic((buffer) => {
      if (this.listening && this.link.sendBinary(buffer)) this.stats.sentAudioFrames += 1;
    });
    let started;
    try {
      started = await this.mic.start();
    } catch (err) {
      this.mic.stop();
      this.mic = null;
      const unsupported = err && err.message === "unsupported";
      return this.note(unsupported ? this.s.errors.voiceUnsupported : this.s.errors.mic, { error: true });
    }
    this.audioFormat = REPLY_FORMAT;
    this.audioOn = true;
    this.link.send({ type: "audio_settings", data: { enabled: true, output_format: REPLY_FORMAT } });
    this.link.send({ type: "start_listening", data: started });
    this.listening = true;
    this.micBtn.setAttribute("aria-pressed", "true");
    this.micBtn.setAttribute("aria-label", this.s.micStop);
    this.interimText("");
  }

  stopMic(tell) {
    if (this.mic) this.mic.stop();
    this.mic = null;
    if (tell && this.listening) this.link.send({ type: "stop_listening", data: {} });
    this.listening = false;
    this.micBtn.setAttribute("aria-pressed", "false");
    this.micBtn.setAttribute("aria-label", this.s.micStart);
    this.interimText("");
  }

  /** The stop button shows while a reply is being written or spoken. */
  refreshControls() {
    if (!this.stopBtn) return;
    const writing = this.items.some((x) => x.role === "assistant" && !x.complete && x.id);
    const hide = !(writing || this.player.playing);
    if (hide && this.stopBtn.hidden === false && this.stopBtn.matches(":focus")) this.input.focus();
    this.stopBtn.hidden = hide;
  }

  destroy() {
    this.link.close();
    if (this.mic) this.mic.stop();
    this.player.close();
    clearTimeout(this.resumeTimer);
    this.host.remove();
  }
}
