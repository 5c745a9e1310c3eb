// The demo chat over wsengine's native JSON protocol: each room is a presence channel; chat
// lines are client publications, "typing…" is a whisper, the member list is presence.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  let ws = null;
  let me = "";
  let channel = "";
  let nextRef = 1;
  const members = new Set();
  const typing = new Map();
  let lastTypingSent = 0;

  function setStatus(online) {
    $("status").textContent = online ? "online" : "offline";
    $("status").className = "status " + (online ? "online" : "offline");
  }

  function addLine(from, text, system) {
    const li = document.createElement("li");
    if (system) {
      li.className = "system";
      li.textContent = text;
    } else {
      const who = document.createElement("span");
      who.className = "from";
      who.textContent = from;
      li.appendChild(who);
      li.appendChild(document.createTextNode(text));
    }
    $("messages").appendChild(li);
    $("messages").scrollTop = $("messages").scrollHeight;
  }

  function renderMembers() {
    const list = $("members");
    list.textContent = "";
    [...members].sort().forEach((user) => {
      const li = document.createElement("li");
      li.textContent = user === me ? user + " (you)" : user;
      li.dataset.user = user;
      list.appendChild(li);
    });
    $("count").textContent = String(members.size);
  }

  function renderTyping() {
    const now = Date.now();
    const names = [...typing.entries()].filter(([, until]) => until > now).map(([user]) => user);
    $("typing").textContent = names.length ? names.join(", ") + " typing…" : "";
  }
  setInterval(renderTyping, 500);

  function send(message) {
    if (ws && ws.readyState === WebSocket.OPEN) {
      message.ref = nextRef++;
      ws.send(JSON.stringify(message));
    }
  }

  function onMessage(event) {
    let m;
    try { m = JSON.parse(event.data); } catch (e) { return; }
    if (m.channel && m.channel !== channel) return;
    switch (m.type) {
      case "subscribed":
        send({ action: "presence", channel });
        break;
      case "presence":
        if (m.event === "list") {
          members.clear();
          (m.users || []).forEach((u) => members.add(u));
        } else if (m.event === "join") {
          if (!members.has(m.user_id)) addLine("", m.user_id + " joined", true);
          members.add(m.user_id);
        } else if (m.event === "leave") {
          members.delete(m.user_id);
          typing.delete(m.user_id);
          addLine("", m.user_id + " left", true);
        }
        renderMembers();
        break;
      case "message":
        if (m.event === "chat" && m.data && typeof m.data.text === "string") {
          typing.delete(m.from);
          renderTyping();
          addLine(m.from || "server", m.data.text, false);
        } else {
          addLine("server", typeof m.data === "string" ? m.data : JSON.stringify(m.data), false);
        }
        break;
      case "whisper":
        if (m.event === "typing") typing.set(m.from, Date.now() + 3000);
        renderTyping();
        break;
      case "error":
        addLine("", "error: " + (m.error || m.code), true);
        break;
    }
  }

  function join(name, room) {
    me = name;
    channel = "presence-" + room;
    members.clear();
    typing.clear();
    $("messages").textContent = "";
    $("room-title").textContent = "#" + room;
    $("chat").hidden = false;
    if (ws) ws.close(1000, "rejoin");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(scheme + "//" + location.host + "/ws?user_id=" + encodeURIComponent(name));
    ws = socket;
    socket.onopen = () => {
      setStatus(true);
      send({ action: "subscribe", channel });
    };
    socket.onmessage = onMessage;
    socket.onclose = (e) => {
      if (ws !== socket) return;
      setStatus(false);
      addLine("", "disconnected (" + e.code + ")", true);
    };
  }

  $("join").addEventListener("submit", (e) => {
    e.preventDefault();
    const name = $("name").value.trim();
    const room = $("room").value.trim().replace(/[^A-Za-z0-9_-]/g, "-");
    if (name && room) join(name, room);
  });

  $("send").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("text").value.trim();
    if (!text) return;
    send({ action: "broadcast", channel, event: "chat", data: { text } });
    // The hub does not echo a publication to its sender: show it here.
    addLine(me, text, false);
    $("text").value = "";
  });

  $("text").addEventListener("input", () => {
    const now = Date.now();
    if (now - lastTypingSent > 1000) {
      lastTypingSent = now;
      send({ action: "whisper", channel, event: "typing", data: true });
    }
  });
})();
