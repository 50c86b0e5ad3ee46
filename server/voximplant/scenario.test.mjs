// Unit tests of scenario.js (node --test), run by scripts/test. The
// scenario runs in a VM context with a stand-in of the VoxEngine API it uses
// (VoxEngine, AppEvents, CallEvents, Net.httpRequestAsync, Crypto,
// VoiceList) and fake timers, so a whole call plays in microseconds and
// every report can be checked: its fields, its order and its signature.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import vm from 'node:vm';

const here = new URL('.', import.meta.url);
const SOURCE = readFileSync(new URL('scenario.js', here), 'utf8');
const PROTOCOL = JSON.parse(readFileSync(new URL('protocol.json', here), 'utf8'));

const SECRET = 'f'.repeat(64);
const DATA = {
  v: 1,
  attempt_key: 'call-7-1',
  to: '+79160000001',
  caller_id: '+74950000000',
  language: 'en',
  voice: 'Amazon.en_US_Joanna',
  texts: {
    message: 'Anna, your parcel arrives 10:00 to 11:00. Press 1 to confirm.',
    no_input: 'We did not hear you.',
    goodbye: 'Thank you, goodbye!',
    connecting: 'Connecting you to your courier.',
    courier_busy: 'Your courier cannot answer right now.',
  },
  keys: { 1: 'confirm', 2: 'reschedule', 3: 'decline', 0: 'talk to your courier' },
  bridge_to: '+79990000001',
  ring_timeout_secs: 30,
  callback_url: 'https://callahead.example/v1/providers/voximplant/calls/call-7-1/events',
  secret: SECRET,
};

const CallEvents = {
  Connected: 'Call.Connected',
  Disconnected: 'Call.Disconnected',
  Failed: 'Call.Failed',
  ProgressToneStart: 'Call.ProgressToneStart',
  PlaybackFinished: 'Call.PlaybackFinished',
  ToneReceived: 'Call.ToneReceived',
  RecordStarted: 'Call.RecordStarted',
};
const AppEvents = { Started: 'Application.Started', HttpRequest: 'Application.HttpRequest' };

/// A fake clock: timers fire only when the test advances time.
class Timers {
  constructor() {
    this.now = 1_800_000_000_000;
    this.queue = [];
    this.next = 1;
  }
  set(fn, ms) {
    const id = this.next++;
    this.queue.push({ id, at: this.now + ms, fn });
    return id;
  }
  clear(id) {
    this.queue = this.queue.filter((t) => t.id !== id);
  }
  advance(ms) {
    const until = this.now + ms;
    for (;;) {
      this.queue.sort((a, b) => a.at - b.at);
      const t = this.queue[0];
      if (!t || t.at > until) break;
      this.queue.shift();
      this.now = t.at;
      t.fn();
    }
    this.now = until;
  }
}

class FakeCall {
  constructor(world, number, callerId) {
    this.world = world;
    this.number = number;
    this.callerId = callerId;
    this.listeners = {};
    this.said = [];
    this.tones = false;
    this.hungUp = false;
  }
  addEventListener(ev, fn) {
    (this.listeners[ev] ||= []).push(fn);
  }
  removeEventListener(ev, fn) {
    this.listeners[ev] = (this.listeners[ev] || []).filter((f) => f !== fn);
  }
  emit(ev, payload = {}) {
    for (const fn of [...(this.listeners[ev] || [])]) fn({ call: this, ...payload });
  }
  say(text, opts) {
    this.said.push({ text, voice: opts && opts.language });
    // Speech takes a second, then PlaybackFinished.
    this.world.timers.set(() => this.emit(CallEvents.PlaybackFinished), 1000);
  }
  stopPlayback() {}
  handleTones(on) {
    this.tones = on;
  }
  record(opts) {
    this.recording = opts;
    this.world.timers.set(() => this.emit(CallEvents.RecordStarted, { url: 'https://storage.voximplant.com/records/1.mp3' }), 0);
  }
  hangup() {
    if (this.hungUp) return;
    this.hungUp = true;
    this.world.timers.set(() => this.emit(CallEvents.Disconnected), 0);
  }
}

/// Runs scenario.js in a fresh context; `replies` answers each report.
function world({ replies = () => 200, data = DATA } = {}) {
  const timers = new Timers();
  const w = { timers, calls: [], reports: [], raw: [], customData: JSON.stringify(data), terminated: false, bridged: null };
  const context = {
    JSON,
    Math,
    String,
    Object,
    Date: { now: () => timers.now },
    setTimeout: (fn, ms) => timers.set(fn, ms),
    clearTimeout: (id) => timers.clear(id),
    CallEvents,
    AppEvents,
    VoiceList: { Amazon: { en_US_Joanna: 'voice:en_US_Joanna', ru_RU_Tatyana: 'voice:ru_RU_Tatyana' } },
    Crypto: { hmac_sha256: (key, data) => createHmac('sha256', key).update(data).digest('hex') },
    Net: {
      httpRequestAsync: (url, opts) => {
        w.raw.push({ url, opts });
        const code = replies(w.raw.length, JSON.parse(opts.postData));
        if (code === 200) w.reports.push(JSON.parse(opts.postData));
        return Promise.resolve({ code, text: '{"ok":true}' });
      },
    },
    VoxEngine: {
      listeners: {},
      addEventListener(ev, fn) {
        this.listeners[ev] = fn;
      },
      customData(v) {
        if (v === undefined) return w.customData;
        w.customData = v;
      },
      callPSTN(number, callerId) {
        const c = new FakeCall(w, number, callerId);
        w.calls.push(c);
        return c;
      },
      sendMediaBetween(a, b) {
        w.bridged = [a.number, b.number];
      },
      terminate() {
        w.terminated = true;
      },
    },
  };
  vm.createContext(context);
  vm.runInContext(SOURCE, context);
  w.start = () => context.VoxEngine.listeners[AppEvents.Started]({ sessionId: 4242 });
  w.http = (content) => context.VoxEngine.listeners[AppEvents.HttpRequest]({ content });
  w.customer = () => w.calls[0];
  return w;
}

const flush = () => new Promise((r) => setImmediate(r));

function events(w) {
  return w.reports.map((r) => r.event);
}

test('a customer who presses 1 is reported step by step, signed, and the session ends', async () => {
  const w = world();
  w.start();
  const c = w.customer();
  assert.deepEqual([c.number, c.callerId], [DATA.to, DATA.caller_id]);
  c.emit(CallEvents.ProgressToneStart);
  w.timers.advance(3000);
  c.emit(CallEvents.Connected);
  assert.equal(c.tones, true, 'listens for keys');
  assert.equal(c.said[0].text, DATA.texts.message);
  assert.equal(c.said[0].voice, 'voice:en_US_Joanna');
  w.timers.advance(4000);
  c.emit(CallEvents.ToneReceived, { tone: '1' });
  w.timers.advance(1000);
  assert.equal(c.said.at(-1).text, DATA.texts.goodbye);
  w.timers.advance(10);
  await flush();
  assert.deepEqual(events(w), ['started', 'ringing', 'answered', 'key', 'ended']);
  const ended = w.reports.at(-1);
  assert.deepEqual(
    { result: ended.result, answered: ended.answered, key: ended.key, talk_secs: ended.talk_secs },
    { result: 'hung_up', answered: true, key: '1', talk_secs: 5 },
  );
  // Numbered from 1, for this attempt and session, each signed.
  assert.deepEqual(w.reports.map((r) => r.n), [1, 2, 3, 4, 5]);
  for (const { opts } of w.raw) {
    const sig = opts.headers.find((h) => h.startsWith('X-Callahead-Signature: ')).split(': ')[1];
    assert.equal(sig, createHmac('sha256', SECRET).update(opts.postData).digest('hex'));
    const body = JSON.parse(opts.postData);
    assert.equal(body.attempt_key, DATA.attempt_key);
    assert.equal(body.session_id, '4242');
    assert.equal(typeof body.ts, 'number');
  }
  assert.equal(w.customData, 'callahead;call-7-1;hung_up;1;1;5', 'the summary the call history keeps');
  assert.ok(w.customData.length <= 200);
  assert.equal(w.terminated, true);
});

test('silence: the menu once more, then goodbye and hang-up', async () => {
  const w = world();
  w.start();
  const c = w.customer();
  c.emit(CallEvents.Connected);
  w.timers.advance(1000 + 6000); // message, then the wait for a key
  assert.equal(c.said[1].text, `${DATA.texts.no_input} ${DATA.texts.message}`);
  w.timers.advance(1000 + 6000);
  assert.equal(c.said[2].text, DATA.texts.goodbye);
  w.timers.advance(1000);
  w.timers.advance(10);
  await flush();
  assert.equal(c.hungUp, true);
  const ended = w.reports.at(-1);
  assert.deepEqual([ended.result, ended.answered, ended.key], ['hung_up', true, null]);
});

test('an unmapped key repeats the menu once; a mapped one after it counts', async () => {
  const w = world();
  w.start();
  const c = w.customer();
  c.emit(CallEvents.Connected);
  w.timers.advance(2000);
  c.emit(CallEvents.ToneReceived, { tone: '9' });
  w.timers.advance(1000);
  assert.equal(c.said[1].text, DATA.texts.message);
  c.emit(CallEvents.ToneReceived, { tone: '3' });
  w.timers.advance(1010);
  await flush();
  assert.deepEqual(
    w.reports.filter((r) => r.event === 'key').map((r) => r.key),
    ['9', '3'],
  );
  assert.equal(w.reports.at(-1).key, '3');
});

test('key 0 bridges the customer to the courier, showing the robot\'s number', async () => {
  const w = world();
  w.start();
  const c = w.customer();
  c.emit(CallEvents.Connected);
  c.emit(CallEvents.ToneReceived, { tone: '0' });
  w.timers.advance(1000); // "connecting you"
  const courier = w.calls[1];
  assert.deepEqual([courier.number, courier.callerId], [DATA.bridge_to, DATA.caller_id]);
  courier.emit(CallEvents.Connected);
  assert.deepEqual(w.bridged, [DATA.to, DATA.bridge_to]);
  courier.emit(CallEvents.Disconnected);
  w.timers.advance(10);
  await flush();
  assert.deepEqual(events(w), ['started', 'answered', 'key', 'bridged', 'ended']);
  assert.equal(w.reports[3].connected, true);
});

test('a courier who does not pick up: the customer hears why', async () => {
  const w = world();
  w.start();
  const c = w.customer();
  c.emit(CallEvents.Connected);
  c.emit(CallEvents.ToneReceived, { tone: '0' });
  w.timers.advance(1000);
  w.calls[1].emit(CallEvents.Failed, { code: 486 });
  assert.equal(c.said.at(-1).text, DATA.texts.courier_busy);
  w.timers.advance(1010);
  await flush();
  assert.equal(w.reports.find((r) => r.event === 'bridged').connected, false);
});

test('busy, unanswered and failed calls end with their reason', async () => {
  for (const [code, result] of [[486, 'busy'], [480, 'no_answer'], [404, 'failed']]) {
    const w = world();
    w.start();
    w.customer().emit(CallEvents.Failed, { code });
    await flush();
    const ended = w.reports.at(-1);
    assert.deepEqual([ended.event, ended.result, ended.answered], ['ended', result, false]);
  }
  const w = world();
  w.start();
  w.timers.advance(DATA.ring_timeout_secs * 1000);
  w.timers.advance(10);
  await flush();
  assert.equal(w.customer().hungUp, true, 'gives up after the ring timeout');
  assert.equal(w.reports.filter((r) => r.event === 'ended').length, 1, 'ended once');
  assert.equal(w.reports.at(-1).result, 'no_answer');
});

test('Callahead hangs up through the media-session URL', async () => {
  const w = world();
  w.start();
  w.customer().emit(CallEvents.ProgressToneStart);
  const answer = JSON.parse(w.http('{"action":"status"}'));
  assert.deepEqual(answer, { attempt_key: DATA.attempt_key, finished: false });
  w.http('{"action":"hangup"}');
  w.timers.advance(10);
  await flush();
  assert.equal(w.customer().hungUp, true);
  assert.equal(w.reports.filter((r) => r.event === 'ended').length, 1);
  assert.equal(JSON.parse(w.http('not json')).finished, true);
});

test('a report Callahead did not take is sent again; the session waits for it', async () => {
  // The first try of every report gets a 503.
  const tries = {};
  const w = world({ replies: (_, body) => ((tries[body.n] = (tries[body.n] || 0) + 1) === 1 ? 503 : 200) });
  w.start();
  w.customer().emit(CallEvents.Failed, { code: 486 });
  assert.equal(w.terminated, false, 'not before the reports are through');
  for (let i = 0; i < 5; i++) await flush();
  assert.deepEqual(events(w), ['started', 'ended']);
  assert.equal(w.terminated, true);
});

test('every report carries exactly the fields of the protocol', async () => {
  const w = world();
  w.start();
  const c = w.customer();
  c.emit(CallEvents.ProgressToneStart);
  c.emit(CallEvents.Connected);
  c.emit(CallEvents.ToneReceived, { tone: '0' });
  w.timers.advance(1000);
  w.calls[1].emit(CallEvents.Connected);
  w.calls[1].emit(CallEvents.Disconnected);
  w.timers.advance(10);
  await flush();
  const common = ['n', 'ts', 'attempt_key', 'session_id'];
  for (const r of w.reports) {
    const example = PROTOCOL.examples.find((e) => e.event === r.event);
    assert.ok(example, `${r.event} is in protocol.json`);
    assert.deepEqual(Object.keys(r).filter((k) => !common.includes(k)).sort(), Object.keys(example).sort(), r.event);
  }
});

const DIRECT = {
  v: 1,
  mode: 'direct',
  attempt_key: 'direct-3',
  courier: '+79990000001',
  to: '+79160000001',
  caller_id: '+74950000000',
  record: true,
  ring_timeout_secs: 30,
  callback_url: 'https://callahead.example/v1/providers/voximplant/direct/direct-3/events',
  secret: SECRET,
};

test('a direct call rings the courier, then the customer, both seeing the company number, and is recorded', async () => {
  const w = world({ data: DIRECT });
  w.start();
  const courier = w.calls[0];
  assert.deepEqual([courier.number, courier.callerId], [DIRECT.courier, DIRECT.caller_id]);
  assert.equal(w.calls.length, 1, 'the customer is not called before the courier answers');
  courier.emit(CallEvents.Connected);
  const customer = w.calls[1];
  assert.deepEqual([customer.number, customer.callerId], [DIRECT.to, DIRECT.caller_id]);
  customer.emit(CallEvents.Connected);
  assert.deepEqual(w.bridged, [DIRECT.courier, DIRECT.to]);
  assert.equal(customer.recording.stereo, true);
  w.timers.advance(40_000);
  customer.emit(CallEvents.Disconnected);
  await flush();
  assert.deepEqual(events(w), ['started', 'connected', 'recorded', 'ended']);
  assert.equal(w.reports[2].recording_ref, 'https://storage.voximplant.com/records/1.mp3');
  assert.deepEqual([w.reports[2].duration_secs, w.reports[3].talk_secs], [40, 40]);
  assert.equal(courier.hungUp, true);
  for (const r of w.reports) {
    const example = PROTOCOL.direct.find((e) => e.event === r.event);
    assert.ok(example, r.event);
    const common = ['n', 'ts', 'attempt_key', 'session_id'];
    assert.deepEqual(Object.keys(r).filter((k) => !common.includes(k)).sort(), Object.keys(example).sort());
  }
});

test('a direct call not recorded when the depot does not record, and one the courier misses', async () => {
  const w = world({ data: { ...DIRECT, record: false } });
  w.start();
  w.calls[0].emit(CallEvents.Connected);
  w.calls[1].emit(CallEvents.Connected);
  assert.equal(w.calls[1].recording, undefined);
  w.calls[0].emit(CallEvents.Disconnected);
  await flush();
  assert.deepEqual(events(w), ['started', 'connected', 'ended']);

  const missed = world({ data: DIRECT });
  missed.start();
  missed.timers.advance(DIRECT.ring_timeout_secs * 1000);
  await flush();
  assert.equal(missed.calls.length, 1, 'the customer was never called');
  assert.deepEqual(events(missed), ['started', 'ended']);
  assert.equal(missed.reports[1].talk_secs, null);
});
