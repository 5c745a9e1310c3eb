// Stock Pusher clients against a wsengine hub. Usage: node scenario.js NAME, with PUSHER_TEST
// holding {"wsPort","apiPort","appId","key","secret"}. Exits 0 and prints "OK NAME" when every
// check passed; any failure prints why and exits 1. Every wait is bounded.
'use strict';
const Pusher = require('pusher-js');
const PusherServer = require('pusher');

const env = JSON.parse(process.env.PUSHER_TEST || '{}');
const scenario = process.argv[2];
const server = new PusherServer({
  appId: env.appId, key: env.key, secret: env.secret,
  host: '127.0.0.1', port: String(env.apiPort), useTLS: false,
  encryptionMasterKeyBase64: env.masterKey,
});
const clients = [];
setTimeout(() => fail(new Error('scenario timed out')), 40000).unref();

function fail(error) {
  console.error('FAIL', scenario, error && error.stack ? error.stack : error);
  process.exit(1);
}
function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
}
// JSON with object keys sorted, so equality ignores key order.
function canon(v) {
  if (Array.isArray(v)) return v.map(canon);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])]));
  return v;
}
function eq(a, b, what) {
  const x = JSON.stringify(canon(a)), y = JSON.stringify(canon(b));
  if (x !== y) throw new Error(`${what}: got ${x}, want ${y}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Polls `cond` every 20 ms for at most 5 s.
async function until(cond, what) {
  for (let i = 0; i < 250; i++) {
    if (cond()) return;
    await sleep(20);
  }
  throw new Error('never happened: ' + what);
}

// A pusher-js client whose channel auth is signed here with the server SDK, as an app's auth
// endpoint would; `user` is the presence member (and the signed-in user).
function client(user, extra = {}) {
  const c = new Pusher(extra.key || env.key, {
    cluster: 'mt1', wsHost: '127.0.0.1', wsPort: env.wsPort, forceTLS: false,
    enabledTransports: ['ws'], disableStats: true,
    channelAuthorization: {
      customHandler: (params, cb) => {
        const secretServer = extra.badSecret
          ? new PusherServer({ appId: env.appId, key: env.key, secret: 'wrong-secret' })
          : server;
        const presence = user ? { user_id: user, user_info: { name: 'user ' + user } } : undefined;
        cb(null, secretServer.authorizeChannel(params.socketId, params.channelName,
          params.channelName.startsWith('presence-') ? presence : undefined));
      },
    },
    userAuthentication: {
      customHandler: (params, cb) => cb(null, server.authenticateUser(params.socketId, { id: user, name: 'user ' + user })),
    },
  });
  clients.push(c);
  return c;
}

// Resolves with the next `event` on `bindable`, or rejects after `ms`.
function next(bindable, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { bindable.unbind(event, h); reject(new Error('timeout waiting for ' + event)); }, ms);
    const h = (data, meta) => { clearTimeout(t); bindable.unbind(event, h); resolve({ data, meta }); };
    bindable.bind(event, h);
  });
}
// Records every `event` on `bindable`.
function record(bindable, event) {
  const seen = [];
  bindable.bind(event, (data, meta) => seen.push({ data, meta }));
  return seen;
}
async function connected(c) {
  if (c.connection.state !== 'connected') await next(c.connection, 'connected');
  check(/^\d+\.\d+$/.test(c.connection.socket_id), 'socket_id format ' + c.connection.socket_id);
  return c;
}
async function subscribed(c, name) {
  const ch = c.subscribe(name);
  const { data } = await next(ch, 'pusher:subscription_succeeded');
  return { ch, data };
}

const scenarios = {
  // Public, private and presence channels; events from the server SDK (trigger, triggerBatch,
  // socket_id exclusion); channel queries; presence member events once per user.
  async channels() {
    const a = await connected(client('1'));
    const { ch: news } = await subscribed(a, 'news');
    const { ch: priv } = await subscribed(a, 'private-a');
    const { ch: room, data: members } = await subscribed(a, 'presence-room');
    eq(members.count, 1, 'members at first');
    eq(members.me.id, '1', 'me');
    eq(members.me.info, { name: 'user 1' }, 'my info');

    let got = next(news, 'ev');
    await server.trigger('news', 'ev', { x: 1 });
    eq((await got).data, { x: 1 }, 'public event');
    got = next(priv, 'ev');
    await server.trigger(['private-a', 'news'], 'ev', 'plain text');
    eq((await got).data, 'plain text', 'private event');

    const gotA = next(news, 'b1'), gotB = next(priv, 'b2');
    const batch = await server.triggerBatch([
      { channel: 'news', name: 'b1', data: '{"n":1}' },
      { channel: 'private-a', name: 'b2', data: JSON.stringify({ n: 2 }), info: 'subscription_count' },
    ]);
    eq(batch.status, 200, 'batch status');
    eq(await batch.json(), { batch: [{}, { subscription_count: 1 }] }, 'batch info');
    eq((await gotA).data, { n: 1 }, 'batch event 1');
    eq((await gotB).data, { n: 2 }, 'batch event 2');

    // Presence: user 2 on two sockets is added once and removed once, with the last socket.
    const added = record(room, 'pusher:member_added');
    const removed = record(room, 'pusher:member_removed');
    const b = await connected(client('2'));
    const { ch: roomB, data: membersB } = await subscribed(b, 'presence-room');
    eq(membersB.count, 2, 'members seen by the second user');
    const b2 = await connected(client('2'));
    const { data: membersB2 } = await subscribed(b2, 'presence-room');
    eq(membersB2.count, 2, 'second socket of user 2 sees 2 users');
    await until(() => added.length >= 1, 'member_added for user 2');
    await sleep(200);
    eq(added.map((m) => m.data), [{ id: '2', info: { name: 'user 2' } }], 'member_added once');
    eq(room.members.count, 2, 'count after adds');

    let res = await server.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count,subscription_count' } });
    eq(await res.json(), { channels: { 'presence-room': { user_count: 2, subscription_count: 3 } } }, 'channels with info');
    res = await server.get({ path: '/channels' });
    const all = Object.keys((await res.json()).channels).sort();
    eq(all, ['news', 'presence-room', 'private-a'], 'channel list');
    res = await server.get({ path: '/channels/presence-room', params: { info: 'user_count,subscription_count' } });
    eq(await res.json(), { occupied: true, user_count: 2, subscription_count: 3 }, 'channel info');
    res = await server.get({ path: '/channels/presence-room/users' });
    eq(await res.json(), { users: [{ id: '1' }, { id: '2' }] }, 'users');

    // socket_id excludes the sender.
    const excluded = record(room, 'ex');
    got = next(roomB, 'ex');
    await server.trigger('presence-room', 'ex', 'x', { socket_id: a.connection.socket_id });
    await got;
    await sleep(200);
    eq(excluded.length, 0, 'excluded socket got nothing');

    b2.disconnect();
    await sleep(300);
    eq(removed.length, 0, 'no member_removed while user 2 has a socket');
    b.disconnect();
    const { data: gone } = await next(room, 'pusher:member_removed');
    eq(gone.id, '2', 'member_removed');
    eq(room.members.count, 1, 'count after removal');
    res = await server.get({ path: '/channels/presence-room', params: { info: 'user_count' } });
    eq(await res.json(), { occupied: true, user_count: 1 }, 'user_count after leave');
  },

  // Client events: private and presence only, never echoed, user_id on presence, rate 4301.
  async client_events() {
    const a = await connected(client('1'));
    const b = await connected(client('2'));
    const { ch: pa } = await subscribed(a, 'private-chat');
    const { ch: pb } = await subscribed(b, 'private-chat');
    const echoed = record(pa, 'client-typing');
    let got = next(pb, 'client-typing');
    check(pa.trigger('client-typing', { who: 'a' }), 'trigger accepted');
    const ev = await got;
    eq(ev.data, { who: 'a' }, 'client event data');
    eq((ev.meta || {}).user_id, undefined, 'no user_id on private channels');
    const { ch: ra } = await subscribed(a, 'presence-chat');
    const { ch: rb } = await subscribed(b, 'presence-chat');
    got = next(rb, 'client-hi');
    ra.trigger('client-hi', 'text');
    const hi = await got;
    eq(hi.data, 'text', 'presence client event');
    eq(hi.meta, { user_id: '1' }, 'user_id on presence client events');

    const { ch: pub } = await subscribed(a, 'public-chat');
    let err = next(a.connection, 'error');
    pub.trigger('client-x', {});
    const refused = await err;
    check(/private and presence/.test(JSON.stringify(refused.data)), 'public client event refused: ' + JSON.stringify(refused.data));

    // 10 per second: a burst of 15 gets 4301 and at most 10 arrive.
    const burst = record(pb, 'client-burst');
    err = next(a.connection, 'error');
    for (let i = 0; i < 15; i++) pa.trigger('client-burst', { i });
    const rate = await err;
    eq(rate.data.data.code, 4301, 'rate limit code ' + JSON.stringify(rate.data));
    await until(() => burst.length >= 1, 'burst delivered');
    await sleep(300);
    check(burst.length >= 1 && burst.length <= 10, 'burst delivered ' + burst.length);
    eq(echoed.length, 0, 'never echoed');
    check(a.connection.state === 'connected', 'still connected after 4301');
  },

  // Auth failures and protocol errors.
  async errors() {
    const a = await connected(client('1', { badSecret: true }));
    const ch = a.subscribe('private-secret');
    const { data } = await next(ch, 'pusher:subscription_error');
    eq(data.type, 'AuthError', 'subscription_error type');
    eq(data.status, 401, 'subscription_error status');
    let res = await server.get({ path: '/channels/private-secret', params: { info: 'subscription_count' } });
    eq(await res.json(), { occupied: false, subscription_count: 0 }, 'joined nothing');

    const bad = client('1', { key: 'no-such-key' });
    const e = await next(bad.connection, 'error');
    check(JSON.stringify(e.data).includes('4001'), 'unknown key 4001: ' + JSON.stringify(e.data));
    await sleep(300);
    check(bad.connection.state !== 'connected', 'unknown key not connected: ' + bad.connection.state);

    const wrong = new PusherServer({ appId: env.appId, key: env.key, secret: 'nope', host: '127.0.0.1', port: String(env.apiPort), useTLS: false });
    try {
      await wrong.trigger('news', 'e', 'x');
      throw new Error('wrong secret accepted');
    } catch (error) {
      eq(error.status, 401, 'wrong secret status');
    }
    try {
      await server.get({ path: '/channels/news', params: { info: 'user_count' } });
      throw new Error('user_count on a public channel accepted');
    } catch (error) {
      eq(error.status, 400, 'user_count on public channel');
    }
    try {
      await server.trigger('news', 'big', 'x'.repeat(20000));
      throw new Error('oversized event accepted');
    } catch (error) {
      eq(error.status, 413, 'oversized event');
    }
    const other = new PusherServer({ appId: '999', key: env.key, secret: env.secret, host: '127.0.0.1', port: String(env.apiPort), useTLS: false });
    try {
      await other.trigger('news', 'e', 'x');
      throw new Error('unknown app accepted');
    } catch (error) {
      eq(error.status, 404, 'unknown app');
    }
  },

  // Sign-in, events to a user, terminating a user's connections.
  async signin() {
    const a = await connected(client('7'));
    const signedIn = next(a.user, 'pusher:signin_success').catch(() => null);
    a.signin();
    // pusher-js subscribes to #server-to-user-7 once signed in.
    for (let i = 0; i < 50 && !(a.user.serverToUserChannel && a.user.serverToUserChannel.subscribed); i++) await sleep(100);
    check(a.user.serverToUserChannel && a.user.serverToUserChannel.subscribed, 'server-to-user channel subscribed');
    eq(a.user.user_data, { id: '7', name: 'user 7' }, 'user_data');
    void signedIn;
    const got = next(a.user, 'hello');
    await server.sendToUser('7', 'hello', { to: 'you' });
    eq((await got).data, { to: 'you' }, 'event to user');
    const closed = next(a.connection, 'state_change', 5000);
    await server.terminateUserConnections('7');
    const change = await closed;
    check(change.data.current !== 'connected', 'terminated: ' + JSON.stringify(change.data));
  },

  // Cache channels and encrypted channels.
  async cache_encrypted() {
    const a = await connected(client('1'));
    const miss = a.subscribe('cache-empty');
    await next(miss, 'pusher:cache_miss');
    await server.trigger('cache-full', 'last', { v: 1 });
    await server.trigger('cache-full', 'last', { v: 2 });
    const full = a.subscribe('cache-full');
    const { data } = await next(full, 'last');
    eq(data, { v: 2 }, 'cached event replayed');

    const { ch: enc } = await subscribed(a, 'private-encrypted-secret');
    const got = next(enc, 'sealed');
    await server.trigger('private-encrypted-secret', 'sealed', { hidden: true });
    eq((await got).data, { hidden: true }, 'decrypted by the client');
  },

  // A webhook the hub signed verifies with the server SDK.
  async webhook() {
    const hook = server.webhook({ headers: env.webhookHeaders, rawBody: env.webhookBody });
    check(hook.isValid(), 'webhook signature valid');
    check(hook.getEvents().length >= 1, 'webhook events');
    const forged = server.webhook({ headers: env.webhookHeaders, rawBody: env.webhookBody.replace('channel', 'chanel') });
    check(!forged.isValid(), 'forged webhook invalid');
  },

  // laravel-echo over pusher-js: public listen, presence here/joining/leaving, whispers.
  async echo() {
    const { default: Echo } = await import('laravel-echo');
    const echo = new Echo({ broadcaster: 'pusher', client: client('5') });
    const echo2 = new Echo({ broadcaster: 'pusher', client: client('6') });
    await connected(echo.connector.pusher);
    await connected(echo2.connector.pusher);
    const got = new Promise((resolve) => echo.channel('orders').listen('.shipped', resolve));
    const lobby = echo.join('lobby');
    const members = await new Promise((resolve) => lobby.here(resolve));
    eq(members, [{ name: 'user 5' }], 'echo here()');
    const joining = new Promise((resolve) => lobby.joining(resolve));
    const members2 = await new Promise((resolve) => echo2.join('lobby').here(resolve));
    eq(members2.length, 2, 'second user sees both');
    eq(await joining, { name: 'user 6' }, 'echo joining()');

    const chat = echo.private('chat');
    const chat2 = echo2.private('chat');
    // Bound before either can succeed: a callback bound late never fires.
    const subscribed1 = new Promise((resolve) => chat.subscribed(resolve));
    const subscribed2 = new Promise((resolve) => chat2.subscribed(resolve));
    await subscribed1;
    await subscribed2;
    const whisper = new Promise((resolve) => chat2.listenForWhisper('typing', resolve));
    chat.whisper('typing', { name: 'user 5' });
    eq(await whisper, { name: 'user 5' }, 'echo whisper');

    const p1 = echo.connector.pusher;
    await until(() => p1.channel('orders') && p1.channel('orders').subscribed, 'orders subscribed');
    await server.trigger('orders', 'shipped', { id: 42 });
    eq(await got, { id: 42 }, 'echo listen');
    const leaving = new Promise((resolve) => lobby.leaving(resolve));
    echo2.leave('lobby');
    eq(await leaving, { name: 'user 6' }, 'echo leaving()');
    echo.disconnect();
    echo2.disconnect();
  },
};

(async () => {
  const run = scenarios[scenario];
  if (!run) throw new Error('unknown scenario ' + scenario);
  await run();
  for (const c of clients) c.disconnect();
  console.log('OK', scenario);
  process.exit(0);
})().catch(fail);
