// Callahead's smart call, as a VoxEngine scenario (docs/providers.md).
//
// Upload it to the Voximplant application and attach it to the rule whose id
// is VOXIMPLANT_RULE_ID. Callahead starts one session per attempt with
// StartScenarios; script_custom_data is a JSON object with the customer's
// number, the caller id, the rendered texts and voice, the key map, the
// courier's number, where to report and a per-attempt secret. The scenario
// dials, speaks, reads one key, bridges to the courier on 0, and reports
// each step to Callahead: a JSON body with a counter (n) and a timestamp
// (ts), signed HMAC-SHA256 with the secret (X-Callahead-Signature, hex).
// When it ends it leaves a short summary in the session's custom data, so a
// restarted Callahead can read from the call history what happened.
//
// Callahead owns the attempt policy (retries, spacing, calling hours): this
// scenario places exactly one call and never retries it.

var GATHER_TIMEOUT_MS = 6000;
var DIAL_TIMEOUT_MS = 20000;
var REPORT_TRIES = 3;

var data = null;
var sessionId = null;
var customer = null;
var courier = null;
var counter = 0;
var answeredAt = null;
var keyPressed = null;
var repeated = false;
var finished = false;
var ringTimer = null;
var inputTimer = null;
var reportsInFlight = 0;
var terminating = false;

function report(body) {
  counter += 1;
  body.n = counter;
  body.ts = Date.now();
  body.attempt_key = data.attempt_key;
  body.session_id = sessionId;
  var json = JSON.stringify(body);
  var headers = [
    'Content-Type: application/json',
    'X-Callahead-Signature: ' + Crypto.hmac_sha256(data.secret, json),
  ];
  reportsInFlight += 1;
  var attempt = function (left) {
    Net.httpRequestAsync(data.callback_url, { method: 'POST', headers: headers, postData: json })
      .then(function (res) {
        // 2xx: applied (or a duplicate); 403: refused for good; else retry.
        if ((res.code >= 200 && res.code < 300) || res.code === 403 || left <= 1) {
          done();
        } else {
          attempt(left - 1);
        }
      })
      .catch(function () {
        if (left <= 1) done();
        else attempt(left - 1);
      });
  };
  var done = function () {
    reportsInFlight -= 1;
    maybeTerminate();
  };
  attempt(REPORT_TRIES);
}

function maybeTerminate() {
  if (terminating && reportsInFlight === 0) VoxEngine.terminate();
}

function say(text, then) {
  var onFinished = function () {
    customer.removeEventListener(CallEvents.PlaybackFinished, onFinished);
    if (then) then();
  };
  customer.addEventListener(CallEvents.PlaybackFinished, onFinished);
  customer.say(text, { language: resolveVoice(data.voice) });
}

// "Amazon.ru_RU_Tatyana" -> VoiceList.Amazon.ru_RU_Tatyana.
function resolveVoice(path) {
  var v = VoiceList;
  var parts = String(path).split('.');
  for (var i = 0; i < parts.length; i++) {
    if (v === undefined || v === null) return path;
    v = v[parts[i]];
  }
  return v === undefined ? path : v;
}

function waitForKey() {
  inputTimer = setTimeout(function () {
    inputTimer = null;
    if (keyPressed !== null) return;
    if (!repeated) {
      repeated = true;
      say(data.texts.no_input + ' ' + data.texts.message, waitForKey);
    } else {
      say(data.texts.goodbye, function () {
        customer.hangup();
      });
    }
  }, GATHER_TIMEOUT_MS);
}

function onTone(e) {
  if (keyPressed !== null || finished) return;
  var key = String(e.tone);
  if (inputTimer) {
    clearTimeout(inputTimer);
    inputTimer = null;
  }
  if (!Object.prototype.hasOwnProperty.call(data.keys, key)) {
    // An unmapped key: Callahead ignores it; the menu once more.
    report({ event: 'key', key: key });
    if (!repeated) {
      repeated = true;
      customer.stopPlayback();
      say(data.texts.message, waitForKey);
    }
    return;
  }
  keyPressed = key;
  customer.stopPlayback();
  report({ event: 'key', key: key });
  if (key === '0' && data.bridge_to) {
    say(data.texts.connecting, bridge);
  } else {
    say(data.texts.goodbye, function () {
      customer.hangup();
    });
  }
}

function bridge() {
  courier = VoxEngine.callPSTN(data.bridge_to, data.caller_id);
  var dialTimer = setTimeout(function () {
    courier.hangup();
  }, DIAL_TIMEOUT_MS);
  courier.addEventListener(CallEvents.Connected, function () {
    clearTimeout(dialTimer);
    VoxEngine.sendMediaBetween(customer, courier);
    report({ event: 'bridged', connected: true });
  });
  courier.addEventListener(CallEvents.Failed, function () {
    clearTimeout(dialTimer);
    report({ event: 'bridged', connected: false });
    say(data.texts.courier_busy, function () {
      customer.hangup();
    });
  });
  courier.addEventListener(CallEvents.Disconnected, function () {
    customer.hangup();
  });
}

function finish(result) {
  if (finished) return;
  finished = true;
  if (ringTimer) clearTimeout(ringTimer);
  if (inputTimer) clearTimeout(inputTimer);
  var talk = answeredAt === null ? null : Math.round((Date.now() - answeredAt) / 1000);
  var answered = answeredAt !== null;
  report({ event: 'ended', result: result, answered: answered, key: keyPressed, talk_secs: talk });
  // At most 200 bytes: what the call history keeps for a restarted Callahead.
  VoxEngine.customData(
    ['callahead', data.attempt_key, result, answered ? '1' : '0', keyPressed || '', talk === null ? '' : talk].join(';'),
  );
  terminating = true;
  maybeTerminate();
}

// SIP codes of a failed PSTN call: busy, not answered, everything else.
function failure(code) {
  if (code === 486 || code === 600) return 'busy';
  if (code === 408 || code === 480 || code === 487) return 'no_answer';
  return 'failed';
}

// A courier's direct call (mode "direct"): the courier's phone first, then
// the customer's, both showing the company's number; recorded if asked. The
// recording stays at Voximplant; Callahead keeps its URL and length.
function startDirect() {
  var connectedAt = null;
  var recordingUrl = null;
  courier = VoxEngine.callPSTN(data.courier, data.caller_id);
  var end = function () {
    if (finished) return;
    finished = true;
    if (ringTimer) clearTimeout(ringTimer);
    if (customer) customer.hangup();
    courier.hangup();
    var talk = connectedAt === null ? null : Math.round((Date.now() - connectedAt) / 1000);
    if (recordingUrl !== null) {
      report({ event: 'recorded', recording_ref: recordingUrl, duration_secs: talk || 0 });
    }
    report({ event: 'ended', talk_secs: talk });
    VoxEngine.customData(['callahead', data.attempt_key, 'direct', connectedAt === null ? '0' : '1', '', talk === null ? '' : talk].join(';'));
    terminating = true;
    maybeTerminate();
  };
  ringTimer = setTimeout(end, data.ring_timeout_secs * 1000);
  courier.addEventListener(CallEvents.Failed, end);
  courier.addEventListener(CallEvents.Disconnected, end);
  courier.addEventListener(CallEvents.Connected, function () {
    if (ringTimer) {
      clearTimeout(ringTimer);
      ringTimer = null;
    }
    customer = VoxEngine.callPSTN(data.to, data.caller_id);
    customer.addEventListener(CallEvents.Connected, function () {
      connectedAt = Date.now();
      VoxEngine.sendMediaBetween(courier, customer);
      if (data.record) {
        customer.addEventListener(CallEvents.RecordStarted, function (ev) {
          recordingUrl = ev.url;
        });
        customer.record({ stereo: true });
      }
      report({ event: 'connected', connected: true });
    });
    customer.addEventListener(CallEvents.Failed, function () {
      report({ event: 'connected', connected: false });
      end();
    });
    customer.addEventListener(CallEvents.Disconnected, end);
  });
}

VoxEngine.addEventListener(AppEvents.Started, function (e) {
  data = JSON.parse(VoxEngine.customData());
  sessionId = String(e.sessionId);
  report({ event: 'started' });
  if (data.mode === 'direct') {
    startDirect();
    return;
  }
  customer = VoxEngine.callPSTN(data.to, data.caller_id);
  ringTimer = setTimeout(function () {
    ringTimer = null;
    if (answeredAt === null) {
      customer.hangup();
      finish('no_answer');
    }
  }, data.ring_timeout_secs * 1000);
  customer.addEventListener(CallEvents.ProgressToneStart, function () {
    report({ event: 'ringing' });
  });
  customer.addEventListener(CallEvents.Connected, function () {
    if (ringTimer) {
      clearTimeout(ringTimer);
      ringTimer = null;
    }
    answeredAt = Date.now();
    report({ event: 'answered' });
    customer.handleTones(true);
    customer.addEventListener(CallEvents.ToneReceived, onTone);
    say(data.texts.message, waitForKey);
  });
  customer.addEventListener(CallEvents.Failed, function (ev) {
    finish(failure(ev.code));
  });
  customer.addEventListener(CallEvents.Disconnected, function () {
    finish(answeredAt === null ? 'no_answer' : 'hung_up');
  });
});

// Callahead's commands on the media-session URL: hang up, or "are you there".
VoxEngine.addEventListener(AppEvents.HttpRequest, function (e) {
  var cmd = {};
  try {
    cmd = JSON.parse(e.content || '{}');
  } catch (err) {
    cmd = {};
  }
  if (cmd.action === 'hangup' && data && data.mode === 'direct') {
    if (courier) courier.hangup();
    return JSON.stringify({ attempt_key: data.attempt_key, finished: finished });
  }
  if (cmd.action === 'hangup' && customer) {
    customer.hangup();
    if (courier) courier.hangup();
    finish(answeredAt === null ? 'no_answer' : 'hung_up');
  }
  return JSON.stringify({ attempt_key: data ? data.attempt_key : null, finished: finished });
});
