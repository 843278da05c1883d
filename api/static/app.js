// The web chat: sends messages to the gateway, streams answers over Server-Sent Events, keeps history.
"use strict";

const TEXTS = {
  en: {
    title: "Assistant", newChat: "New chat", send: "Send", stop: "Stop", signOut: "Sign out",
    placeholder: "Write a message…",
    signedOut: "This page needs your personal link. Ask the assistant's owner for one, " +
      "or send /web to the assistant's Telegram bot.",
    usedLink: "This link was already used or has expired. Ask for a new one.",
    queued: (p, eta) => `In the queue: ${p}` + (eta ? `, about ${Math.max(1, Math.round(eta))} s` : ""),
    thinking: "Thinking…", stopped: "Stopped.", failed: "Something went wrong.",
    unavailable: "The assistant is unavailable right now. Please try again shortly.",
    empty: "(no answer)",
    chats: "Chats", untitled: "Untitled", export: "Download as Markdown", remove: "Delete",
    rename: "Rename", renamePrompt: "New title:", confirmRemove: (t) => `Delete “${t}” and all its messages?`,
    busyRemove: "An answer in this conversation is still being written; try again when it is done.",
    instructions: "Your instructions", save: "Save", saved: "Saved.",
    instructionsHelp: "Added after the owner's instructions, from your next message (at most 1000 characters).",
    exportAll: "Download everything kept about me",
    devices: "Signed in", devicesHelp: "Pages signed in as you and your API tokens. Revoking one ends it at once.",
    thisPage: "This page", webPage: "A web page", apiToken: "API token", since: "since", revoke: "Revoke",
    quota: (period, limit, at) => `You have used your ${period === "month" ? "monthly" : "daily"} quota of ` +
      `${limit} tokens. It starts anew at ${at}.`,
    voice: "Send a voice note (an audio file)", listening: "Listening…",
    correct: "Heard wrong? Correct the words", correctPrompt: "The right words:",
    voiceFailures: {
      voice_unreadable: "This file could not be played as audio.",
      voice_empty: "No speech was heard in this recording.",
      voice_too_long: "This recording is too long to transcribe.",
      voice_language: "The speech model here does not know the language you chose.",
      voice_unavailable: "Voice notes cannot be transcribed right now.",
      voice_disabled: "Voice notes are turned off here.",
    },
    voiceTooLong: (limit) => `Recordings may be at most ${limit} seconds long.`,
    attach: "Send a document to ask about (PDF, DOCX, HTML, Markdown, text; or drop it here)",
    reading: (name) => `Reading “${name}”…`,
    readingPage: (name, page, pages) => `Reading “${name}”: page ${page} of ${pages}`,
    read: (name, pages) => `“${name}” is read${pages ? ` (${pages} pages)` : ""}. Ask about it: ` +
      "the answers come from its text, with where it says so.",
    sources: "Sources", page: "p.",
    documentFailures: {
      document_unsupported: "This is not a document I read (PDF, DOCX, HTML, Markdown or text).",
      document_unreadable: "This document is damaged: it could not be read.",
      document_encrypted: "This document is protected by a password. Send it without one.",
      document_no_text: "This document has no text to read (a scan, or pictures of pages).",
      document_too_large: "This document is longer than is read here.",
      document_too_costly: "Reading this document took longer than a document may.",
      document_interrupted: "Reading was interrupted. Please send the document again.",
    },
  },
  ru: {
    title: "Ассистент", newChat: "Новый чат", send: "Отправить", stop: "Стоп", signOut: "Выйти",
    placeholder: "Напишите сообщение…",
    signedOut: "Для этой страницы нужна ваша личная ссылка. Попросите её у владельца ассистента " +
      "или отправьте /web его боту в Telegram.",
    usedLink: "Эта ссылка уже использована или устарела. Попросите новую.",
    queued: (p, eta) => `В очереди: ${p}` + (eta ? `, примерно ${Math.max(1, Math.round(eta))} с` : ""),
    thinking: "Думаю…", stopped: "Остановлено.", failed: "Что-то пошло не так.",
    unavailable: "Ассистент сейчас недоступен. Попробуйте чуть позже.",
    empty: "(нет ответа)",
    chats: "Чаты", untitled: "Без названия", export: "Скачать в Markdown", remove: "Удалить",
    rename: "Переименовать", renamePrompt: "Новое название:", confirmRemove: (t) => `Удалить «${t}» со всеми сообщениями?`,
    busyRemove: "В этом разговоре ещё пишется ответ; попробуйте, когда он закончится.",
    instructions: "Ваши инструкции", save: "Сохранить", saved: "Сохранено.",
    instructionsHelp: "Добавляются после инструкций владельца, со следующего сообщения (не больше 1000 символов).",
    exportAll: "Скачать всё, что хранится обо мне",
    devices: "Где вы вошли", devicesHelp: "Страницы, где вы вошли, и ваши API-токены. Отозванный сразу перестаёт работать.",
    thisPage: "Эта страница", webPage: "Веб-страница", apiToken: "API-токен", since: "с", revoke: "Отозвать",
    quota: (period, limit, at) => `Вы израсходовали ${period === "month" ? "месячный" : "дневной"} лимит в ` +
      `${limit} токенов. Он обновится ${at}.`,
    voice: "Отправить голосовое (аудиофайл)", listening: "Слушаю…",
    correct: "Расслышано неверно? Исправить", correctPrompt: "Правильные слова:",
    voiceFailures: {
      voice_unreadable: "Этот файл не удалось воспроизвести как звук.",
      voice_empty: "В записи не слышно речи.",
      voice_too_long: "Запись слишком длинная для расшифровки.",
      voice_language: "Модель речи здесь не знает выбранный вами язык.",
      voice_unavailable: "Сейчас голосовые не расшифровываются.",
      voice_disabled: "Голосовые здесь выключены.",
    },
    voiceTooLong: (limit) => `Записи — не длиннее ${limit} с.`,
    attach: "Прислать документ, чтобы спросить о нём (PDF, DOCX, HTML, Markdown, текст; или перетащите сюда)",
    reading: (name) => `Читаю «${name}»…`,
    readingPage: (name, page, pages) => `Читаю «${name}»: страница ${page} из ${pages}`,
    read: (name, pages) => `«${name}» прочитан${pages ? ` (${pages} стр.)` : ""}. Спрашивайте: ` +
      "ответы будут по его тексту, с указанием, где это написано.",
    sources: "Источники", page: "стр.",
    documentFailures: {
      document_unsupported: "Это не документ, который я читаю (PDF, DOCX, HTML, Markdown или текст).",
      document_unreadable: "Документ повреждён: прочитать его не удалось.",
      document_encrypted: "Документ защищён паролем. Пришлите его без пароля.",
      document_no_text: "В документе нет текста, который можно прочитать (скан или картинки страниц).",
      document_too_large: "Документ длиннее, чем здесь читают.",
      document_too_costly: "Чтение документа заняло больше времени, чем отведено.",
      document_interrupted: "Чтение прервалось. Пришлите документ ещё раз.",
    },
  },
};
const LANG = (navigator.language || "en").toLowerCase().startsWith("ru") ? "ru" : "en";
const T = TEXTS[LANG];

const log = document.getElementById("log");
const composer = document.getElementById("composer");
const input = document.getElementById("input");
const sendButton = document.getElementById("send");
const stopButton = document.getElementById("stop");
const signOutButton = document.getElementById("sign-out");
const sidebar = document.getElementById("sidebar");
const chatList = document.getElementById("chats");
const menuButton = document.getElementById("menu");
const instructionsBox = document.getElementById("instructions");
const exportAll = document.getElementById("export-all");

// Who we are comes from the session cookie (HttpOnly: this script never sees it) via /api/me.
let me = null; // {user_id, chat_id}
let current = null; // {taskId, controller}
// A new chat being made: a message sent meanwhile waits for it, or it would go to the old chat and
// its bubbles be cleared away with the old chat's log.
let opening = null;

function translatePage() {
  document.documentElement.lang = LANG;
  document.title = T.title;
  for (const el of document.querySelectorAll("[data-text]")) el.textContent = T[el.dataset.text];
  for (const el of document.querySelectorAll("[data-title]")) {
    el.title = T[el.dataset.title];
    el.setAttribute("aria-label", T[el.dataset.title]);
  }
  input.placeholder = T.placeholder;
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (typeof options.body === "string") headers["Content-Type"] = "application/json";
  const response = await fetch(path, Object.assign({}, options, {headers, credentials: "same-origin"}));
  if (response.status === 401) {
    signedOut(T.signedOut);
    throw new Error("unauthorized");
  }
  return response;
}

function signedOut(reason) {
  me = null;
  composer.hidden = true;
  signOutButton.hidden = true;
  sidebar.hidden = true;
  menuButton.hidden = true;
  log.replaceChildren();
  if (reason) note(reason, true);
}

function chatBody(extra) {
  return JSON.stringify(Object.assign(me.chat_id ? {chat_id: me.chat_id} : {}, extra));
}

// Answers are shown as text; fenced code blocks become <pre>. Nothing is ever parsed as HTML.
function renderInto(el, text) {
  el.replaceChildren();
  const parts = text.split(/```[^\n]*\n?/);
  parts.forEach((part, i) => {
    if (i % 2 === 1) {
      const pre = document.createElement("pre");
      const code = document.createElement("code");
      code.textContent = part.replace(/\n$/, "");
      pre.append(code);
      el.append(pre);
    } else if (part) {
      appendInline(el, part);
    }
  });
}

// **bold**, `code` and "# headings" as elements built from text nodes; anything else stays literal.
function appendInline(el, text) {
  const lines = text.split("\n");
  lines.forEach((line, n) => {
    if (n) el.append("\n");
    const heading = /^#{1,6}\s+(.*)$/.exec(line);
    if (heading) {
      const strong = document.createElement("strong");
      strong.textContent = heading[1];
      el.append(strong);
      return;
    }
    for (const piece of line.split(/(\*\*[^*\n]+\*\*|`[^`\n]+`)/)) {
      if (/^\*\*[^*\n]+\*\*$/.test(piece)) {
        const strong = document.createElement("strong");
        strong.textContent = piece.slice(2, -2);
        el.append(strong);
      } else if (/^`[^`\n]+`$/.test(piece)) {
        const code = document.createElement("code");
        code.textContent = piece.slice(1, -1);
        el.append(code);
      } else if (piece) {
        el.append(document.createTextNode(piece));
      }
    }
  });
}

function bubble(role, text) {
  const el = document.createElement("div");
  el.className = "msg " + role;
  renderInto(el, text);
  log.append(el);
  log.scrollTop = log.scrollHeight;
  return el;
}

function note(text, isError) {
  const el = bubble(isError ? "assistant error" : "assistant note", text);
  return el;
}

function busy(on) {
  sendButton.hidden = on;
  stopButton.hidden = !on;
  input.disabled = false;
}

// Follow one task over Server-Sent Events until it is done; `asked` is the question's bubble
// (a voice note's shows its words once they are heard).
async function follow(taskId, el, asked) {
  const controller = new AbortController();
  current = {taskId, controller};
  busy(true);
  let text = "";
  try {
    const response = await api(`/api/tasks/${taskId}/events`, {signal: controller.signal});
    if (!response.ok) throw new Error(String(response.status));
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const chunk = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const event = /^event: (.*)$/m.exec(chunk)?.[1];
        const data = JSON.parse(/^data: (.*)$/m.exec(chunk)?.[1] || "{}");
        if (event === "status") {
          el.classList.add("note");
          const listening = data.voice && !data.voice.transcript;
          renderInto(el, data.status === "queued" ? T.queued(data.position, data.estimated_wait_seconds)
            : listening ? T.listening : T.thinking);
        } else if (event === "voice") {
          if (asked) renderInto(asked, "🎤 " + data.transcript);
          if (el.classList.contains("note")) renderInto(el, T.thinking);
        } else if (event === "delta") {
          el.classList.remove("note");
          text += data.text;
          renderInto(el, text);
        } else if (event === "done") {
          el.classList.remove("note");
          showFinal(el, data, text);
          if (asked && data.voice && data.voice.transcript) offerCorrection(asked, el, taskId, data.voice.transcript);
        }
        log.scrollTop = log.scrollHeight;
      }
    }
  } catch (error) {
    if (error.message !== "unauthorized" && error.name !== "AbortError") {
      el.classList.add("error");
      renderInto(el, T.unavailable);
    }
  } finally {
    current = null;
    busy(false);
  }
}

function showFinal(el, status, streamed) {
  if (status.status === "failed") {
    el.classList.add("error");
    renderInto(el, T.voiceFailures[status.finish_reason] || status.error || T.failed);
  } else if (status.status === "canceled") {
    renderInto(el, (status.answer || streamed || "") + (status.answer || streamed ? "\n\n" : "") + T.stopped);
  } else {
    renderInto(el, status.answer || T.empty);
  }
  if (status.sources && status.sources.length) {
    const line = document.createElement("div");
    line.className = "sources";
    const places = status.sources.map((s) => `“${s.name}”` +
      (s.page ? `, ${T.page} ${s.page}` : s.section ? ` (${s.section})` : ""));
    line.textContent = `📄 ${T.sources}: ${places.join("; ")}`;
    el.append(line);
  }
}

async function send(text) {
  if (opening) await opening;
  bubble("user", text);
  const el = bubble("assistant note", T.thinking);
  try {
    const response = await api("/api/chat", {
      method: "POST",
      body: chatBody({text, idempotency_key: crypto.randomUUID()}),
    });
    const body = await response.json();
    if (!response.ok) {
      el.classList.add("error");
      renderInto(el, refusal(response.status, body));
      return;
    }
    loadChats(); // a first message names a new conversation
    await follow(body.task_id, el);
  } catch (error) {
    if (error.message !== "unauthorized") {
      el.classList.add("error");
      renderInto(el, T.unavailable);
    }
  }
}

// A voice note heard wrong: the right words are answered instead, in its place in the history.
function offerCorrection(asked, el, taskId, words) {
  const button = tool("✏️", T.correct, async () => {
    if (current) return;
    const text = (window.prompt(T.correctPrompt, words) || "").trim();
    if (!text || text === words) return;
    const response = await api(`/api/tasks/${taskId}/regenerate`, {method: "POST", body: JSON.stringify({text})});
    const body = await response.json();
    if (!response.ok) {
      note(refusal(response.status, body), true);
      return;
    }
    renderInto(asked, "🎤 " + text);
    el.className = "msg assistant note";
    renderInto(el, T.thinking);
    await follow(body.task_id, el, null);
  });
  asked.append(" ", button);
}

// A recording (or any audio file) sent as a message: heard on the server, then answered.
async function sendVoice(file) {
  if (opening) await opening;
  const asked = bubble("user", "🎤 " + file.name);
  const el = bubble("assistant note", T.listening);
  const form = new FormData();
  form.append("file", file);
  form.append("idempotency_key", crypto.randomUUID());
  if (me.chat_id) form.append("chat_id", me.chat_id);
  try {
    const response = await api("/api/chat/voice", {method: "POST", body: form});
    const body = await response.json();
    if (!response.ok) {
      el.classList.add("error");
      renderInto(el, refusal(response.status, body));
      return;
    }
    loadChats();
    await follow(body.task_id, el, asked);
  } catch (error) {
    if (error.message !== "unauthorized") {
      el.classList.add("error");
      renderInto(el, T.unavailable);
    }
  }
}

// A document to ask about: sent, then its reading followed until it is read (or why it is not).
async function sendDocument(file) {
  if (opening) await opening;
  bubble("user", "📄 " + file.name);
  const el = bubble("assistant note", T.reading(file.name));
  const form = new FormData();
  form.append("file", file);
  if (me.chat_id) form.append("chat_id", me.chat_id);
  try {
    const response = await api("/api/documents", {method: "POST", body: form});
    let body = await response.json();
    if (!response.ok) {
      el.classList.add("error");
      renderInto(el, refusal(response.status, body));
      return;
    }
    loadChats(); // a document may start a conversation
    while (body.status === "queued" || body.status === "started") {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const again = await api(`/api/documents/${encodeURIComponent(body.document_id)}`);
      if (!again.ok) return; // deleted meanwhile
      body = await again.json();
      if (body.pages && body.pages_read) renderInto(el, T.readingPage(body.name, body.pages_read, body.pages));
    }
    if (body.status === "failed") {
      el.classList.add("error");
      renderInto(el, T.documentFailures[body.error_code] || body.error || T.failed);
    } else {
      renderInto(el, T.read(body.name, body.pages));
    }
  } catch (error) {
    if (error.message !== "unauthorized") {
      el.classList.add("error");
      renderInto(el, T.unavailable);
    }
  }
}

// Why a message was not taken, in the reader's language where the gateway's code says what it was.
function refusal(status, body) {
  if (body.code === "voice_disabled") return T.voiceFailures.voice_disabled;
  if (body.code === "voice_too_long") return T.voiceTooLong(body.limit);
  if (status >= 500) return T.unavailable;
  if (body.code === "quota_exceeded" && body.resets_at) {
    const at = new Date(body.resets_at).toLocaleString(LANG, {dateStyle: "medium", timeStyle: "short"});
    return T.quota(body.period, body.limit, at);
  }
  return String(body.detail || T.failed);
}

async function loadHistory() {
  const query = me.chat_id ? `?chat_id=${encodeURIComponent(me.chat_id)}` : "";
  const response = await api(`/api/users/${encodeURIComponent(me.user_id)}/history${query}`);
  if (!response.ok) return;
  log.replaceChildren();
  for (const exchange of await response.json()) {
    const asked = bubble("user", exchange.question);
    const el = bubble("assistant", "");
    if (exchange.status === "queued" || exchange.status === "started") {
      follow(exchange.task_id, el, asked); // an answer still on its way when the page was reloaded
    } else {
      showFinal(el, exchange, "");
    }
  }
}

composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text || current) return;
  input.value = "";
  input.style.height = "";
  send(text);
});

const voiceFile = document.getElementById("voice-file");
document.getElementById("voice").addEventListener("click", () => {
  if (!current) voiceFile.click();
});
voiceFile.addEventListener("change", () => {
  const file = voiceFile.files[0];
  voiceFile.value = "";
  if (file && !current) sendVoice(file);
});

const documentFile = document.getElementById("document-file");
document.getElementById("attach").addEventListener("click", () => documentFile.click());
documentFile.addEventListener("change", () => {
  const file = documentFile.files[0];
  documentFile.value = "";
  if (file) sendDocument(file);
});
// A document dropped anywhere on the conversation is sent the same way.
const chatArea = document.getElementById("chat");
chatArea.addEventListener("dragover", (event) => {
  if (!me || composer.hidden) return;
  event.preventDefault();
  chatArea.classList.add("dropping");
});
chatArea.addEventListener("dragleave", () => chatArea.classList.remove("dropping"));
chatArea.addEventListener("drop", (event) => {
  chatArea.classList.remove("dropping");
  if (!me || composer.hidden) return;
  event.preventDefault();
  for (const file of event.dataTransfer.files) sendDocument(file);
});

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    composer.requestSubmit();
  }
});

input.addEventListener("input", () => {
  input.style.height = "auto";
  input.style.height = input.scrollHeight + "px";
});

stopButton.addEventListener("click", async () => {
  if (!current) return;
  stopButton.disabled = true;
  try {
    await api(`/api/tasks/${current.taskId}/cancel`, {method: "POST"});
  } finally {
    stopButton.disabled = false;
  }
});

document.getElementById("new-chat").addEventListener("click", async () => {
  if (current) current.controller.abort();
  opening = (async () => {
    await api("/api/conversations", {method: "POST", body: chatBody({})});
    log.replaceChildren();
  })();
  try {
    await opening;
  } finally {
    opening = null;
  }
  await loadChats();
  input.focus();
});

// The sidebar: the person's conversations in this chat, the current one first.
function userPath(suffix) {
  return `/api/users/${encodeURIComponent(me.user_id)}${suffix}`;
}

async function loadChats() {
  const query = me.chat_id ? `?chat_id=${encodeURIComponent(me.chat_id)}` : "";
  const response = await api(userPath(`/conversations${query}`));
  if (!response.ok) return;
  chatList.replaceChildren();
  for (const conversation of await response.json()) chatList.append(chatItem(conversation));
}

function chatItem(conversation) {
  const id = conversation.conversation_id;
  const title = conversation.title || T.untitled;
  const item = document.createElement("li");
  item.dataset.id = String(id);
  if (conversation.current) item.classList.add("current");
  const open = document.createElement("button");
  open.type = "button";
  open.className = "open";
  open.textContent = title;
  open.title = title;
  open.addEventListener("click", () => switchTo(id));
  const rename = tool("✎", T.rename, async () => {
    const name = window.prompt(T.renamePrompt, title);
    if (!name || !name.trim()) return;
    await api(`/api/conversations/${id}`, {method: "PATCH", body: JSON.stringify({title: name.trim().slice(0, 100)})});
    await loadChats();
  });
  const download = document.createElement("a");
  download.href = `/api/conversations/${id}/export?format=md&lang=${LANG}`;
  download.download = `conversation-${id}.md`;
  download.textContent = "⤓";
  download.title = T.export;
  download.className = "export";
  const remove = tool("🗑", T.remove, async () => {
    if (!window.confirm(T.confirmRemove(title))) return;
    const response = await api(`/api/conversations/${id}`, {method: "DELETE"});
    if (response.status === 409) {
      window.alert(T.busyRemove);
      return;
    }
    await loadChats();
    if (conversation.current) await loadHistory();
  });
  remove.classList.add("remove");
  item.append(open, rename, download, remove);
  return item;
}

function tool(symbol, label, action) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "tool";
  button.textContent = symbol;
  button.title = label;
  button.setAttribute("aria-label", label);
  button.addEventListener("click", action);
  return button;
}

async function switchTo(id) {
  if (current) current.controller.abort();
  composer.hidden = true; // until the other conversation's history is in
  try {
    await api(`/api/conversations/${id}/activate`, {method: "POST"});
    document.body.classList.remove("menu-open");
    menuButton.setAttribute("aria-expanded", "false");
    await Promise.all([loadChats(), loadHistory()]);
  } finally {
    composer.hidden = !me;
  }
}

menuButton.addEventListener("click", () => {
  const open = document.body.classList.toggle("menu-open");
  menuButton.setAttribute("aria-expanded", String(open));
});

async function loadSettings() {
  const response = await api(userPath("/settings"));
  if (response.ok) instructionsBox.value = (await response.json()).instructions || "";
}

document.getElementById("save-instructions").addEventListener("click", async () => {
  const text = instructionsBox.value.trim();
  const response = await api(userPath("/instructions"), {
    method: "PUT",
    body: JSON.stringify({instructions: text || null}),
  });
  document.getElementById("instructions-saved").hidden = !response.ok;
});

// Where the person is signed in: pages (sessions) and API tokens, each revocable; never a secret.
const credentialList = document.getElementById("credentials");

async function loadCredentials() {
  const response = await api(userPath("/credentials"));
  if (!response.ok) return;
  credentialList.replaceChildren();
  for (const held of await response.json()) {
    const item = document.createElement("li");
    item.dataset.kind = held.kind;
    const kind = held.kind === "api" ? T.apiToken : held.current ? T.thisPage : T.webPage;
    const since = new Date(held.created_at).toLocaleDateString(LANG);
    const label = document.createElement("span");
    label.textContent = `${kind}${held.label ? ` “${held.label}”` : ""} · ${T.since} ${since}`;
    const revoke = tool("✕", T.revoke, async () => {
      const gone = await api(userPath(`/credentials/${held.id}`), {method: "DELETE"});
      if (gone.ok && held.current) signedOut(null);
      else await loadCredentials();
    });
    revoke.classList.add("remove");
    item.append(label, revoke);
    credentialList.append(item);
  }
}

document.getElementById("devices").addEventListener("toggle", (event) => {
  if (event.target.open) loadCredentials().catch(() => {});
});

signOutButton.addEventListener("click", async () => {
  if (current) current.controller.abort();
  await fetch("/api/session", {method: "DELETE", credentials: "same-origin"});
  signedOut(null);
});

// A personal link carries a one-time invite after "#": trade it for a session, then drop it from
// the address bar and the history, so the link cannot be reused from this browser's history.
async function start() {
  translatePage();
  const invite = new URLSearchParams(location.hash.slice(1)).get("invite");
  if (invite) {
    history.replaceState(null, "", location.pathname);
    const response = await fetch("/api/session", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({invite}),
      credentials: "same-origin",
    });
    if (!response.ok) {
      signedOut(T.usedLink);
      return;
    }
  }
  const response = await api("/api/me");
  if (!response.ok) return;
  me = await response.json();
  signOutButton.hidden = false;
  sidebar.hidden = false;
  menuButton.hidden = false;
  exportAll.href = userPath("/export");
  exportAll.download = "ai-assistant-export.json";
  exportAll.hidden = false;
  await Promise.all([loadHistory(), loadChats(), loadSettings()]);
  // Only now: a message sent while the history was loading would be wiped by it.
  composer.hidden = false;
}

start().catch(() => {});
