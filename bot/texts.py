"""Everything the bot says, in English and Russian, picked from the user's Telegram language."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "start": (
            "Hi, {name}! I am an AI assistant running on a small private server.\n\n"
            "Just write to me and I will answer; I remember our conversation until you start a new one "
            "with /new. /help lists everything I can do."
        ),
        "help": (
            "Commands:\n"
            "/new: start a new conversation\n"
            "/retry: write the last answer again\n"
            "/cancel: stop the answer being written\n"
            "/mode: choose how I answer\n"
            "/stats: your usage\n"
            "/web: a personal link to the same conversations in a browser\n"
            "/help: this list\n\n"
            "In groups I answer when mentioned or replied to. I understand text only."
        ),
        "help_admin": (
            "\n\nAdmins: /status shows the queue, workers and model; /users lists who asked for "
            "access; /allow and /block with a user id let someone in or keep them out."
        ),
        "queued": "⏳ In the queue: {position}",
        "queued_eta": "⏳ In the queue: {position}, about {eta}",
        "thinking": "✍️ Thinking…",
        "stopped": "⏹ Stopped.",
        "failed_error": "⚠️ Something went wrong while I was writing the answer. Please try again.",
        "failed_timeout": "⚠️ The answer took too long and was stopped. Try a shorter question.",
        "failed_context_length": "⚠️ Your message is too long for the model. Please shorten it or split it.",
        "failed_worker_lost": "⚠️ I was interrupted while writing the answer. Please try again.",
        "failed_model_unavailable": "⚠️ The model is not reachable right now. Please try again later.",
        "empty_answer": "🤷 The model had nothing to say. Try asking differently.",
        "gateway_down": "⚠️ The assistant is unavailable right now. Please try again in a minute.",
        "busy": "⚠️ Too many people are asking right now. Please try again in a minute.",
        "too_long": "⚠️ Your message is too long: at most {limit} characters, please.",
        "rejected": "⚠️ I could not take this message: {detail}",
        "text_only": "I can only read text messages. Please write your question in words.",
        "not_allowed": "Sorry, this assistant is private. Ask its owner for access.",
        "rate_limited": "You are writing faster than I can answer. Please wait {seconds} s.",
        "new_done": "🆕 New conversation. What shall we talk about?",
        "nothing_to_retry": "There is no answer to write again yet.",
        "not_yours": "This button belongs to someone else's answer.",
        "nothing_to_cancel": "Nothing is being written right now.",
        "canceling": "⏹ Stopping…",
        "mode_pick": "How shall I answer? Now: {current}.",
        "mode_set": "✅ Mode: {name}. It applies from your next message.",
        "stats": (
            "📊 Your usage\n"
            "Messages: {messages}\nAnswers: {answers}\nConversations: {conversations}\n"
            "Tokens: {prompt_tokens} in, {completion_tokens} out\nAverage speed: {speed}"
        ),
        "status": (
            "🖥 Service\nQueued: {queued}\nBeing answered: {generating}\nWorkers: {workers}\n"
            "Model: {model}\nRecent speed: {speed}"
        ),
        "admins_only": "This command is for the assistant's admins.",
        "unknown": "—",
        "tokens_per_second": "{value} tokens/s",
        "seconds": "{value} s",
        "minutes": "{value} min",
        "button_regenerate": "🔄 Regenerate",
        "button_new": "🆕 New chat",
        "button_retry": "🔁 Try again",
        "button_stop": "⏹ Stop",
        "access_requested": (
            "👋 This assistant is private. I have asked its admins to let you in; "
            "I will write to you as soon as they decide."
        ),
        "access_pending": "⏳ Your access request is waiting for an admin. I will write when it is decided.",
        "access_granted": "✅ You can talk to me now. Just write your question.",
        "access_request_admin": "🔔 {name} (id {id}) asks for access. Let them in?",
        "button_allow": "✅ Allow",
        "button_deny": "🚫 Deny",
        "access_allowed": "✅ {name} may talk to the assistant now.",
        "access_blocked": "🚫 {name} is blocked.",
        "access_usage": "Usage: /{command} <Telegram user id>",
        "users_header": "👥 People\n",
        "users_line": "{mark} {name} (id {id})",
        "users_empty": "Nobody has asked for access yet.",
        "web_link": "🔗 Your personal link to the web chat, with the same conversations. It opens once, "
        "within {hours} h; keep it to yourself:\n{link}",
        "web_unavailable": "The web chat is not set up on this server (PUBLIC_URL is not set).",
        "web_private_only": "Send /web to me in a private chat: the link is personal.",
        "error": "⚠️ Something went wrong on my side. Please try again.",
    },
    "ru": {
        "start": (
            "Привет, {name}! Я ИИ-ассистент, работаю на небольшом частном сервере.\n\n"
            "Просто напишите мне, и я отвечу; я помню наш разговор, пока вы не начнёте новый командой "
            "/new. Все возможности: /help."
        ),
        "help": (
            "Команды:\n"
            "/new — начать новый разговор\n"
            "/retry — написать последний ответ заново\n"
            "/cancel — остановить ответ\n"
            "/mode — выбрать стиль ответов\n"
            "/stats — ваша статистика\n"
            "/web — личная ссылка на те же разговоры в браузере\n"
            "/help — этот список\n\n"
            "В группах я отвечаю, когда меня упоминают или отвечают на моё сообщение. Понимаю только текст."
        ),
        "help_admin": (
            "\n\nДля админов: /status — очередь, воркеры и модель; /users — кто просил доступ; "
            "/allow и /block с id пользователя — впустить или не пускать."
        ),
        "queued": "⏳ В очереди: {position}",
        "queued_eta": "⏳ В очереди: {position}, примерно {eta}",
        "thinking": "✍️ Думаю…",
        "stopped": "⏹ Остановлено.",
        "failed_error": "⚠️ Что-то пошло не так, пока я писал ответ. Попробуйте ещё раз.",
        "failed_timeout": "⚠️ Ответ занял слишком много времени и был остановлен. Попробуйте вопрос покороче.",
        "failed_context_length": "⚠️ Сообщение слишком длинное для модели. Сократите его или разбейте.",
        "failed_worker_lost": "⚠️ Меня прервали, пока я писал ответ. Попробуйте ещё раз.",
        "failed_model_unavailable": "⚠️ Модель сейчас недоступна. Попробуйте чуть позже.",
        "empty_answer": "🤷 Модели нечего сказать. Попробуйте спросить иначе.",
        "gateway_down": "⚠️ Ассистент сейчас недоступен. Попробуйте через минуту.",
        "busy": "⚠️ Сейчас слишком много вопросов. Попробуйте через минуту.",
        "too_long": "⚠️ Слишком длинное сообщение: не больше {limit} символов, пожалуйста.",
        "rejected": "⚠️ Не получилось принять сообщение: {detail}",
        "text_only": "Я понимаю только текстовые сообщения. Напишите вопрос словами.",
        "not_allowed": "Извините, это частный ассистент. Попросите доступ у его владельца.",
        "rate_limited": "Вы пишете быстрее, чем я успеваю отвечать. Подождите {seconds} с.",
        "new_done": "🆕 Новый разговор. О чём поговорим?",
        "nothing_to_retry": "Пока нечего писать заново.",
        "not_yours": "Эта кнопка под чужим ответом.",
        "nothing_to_cancel": "Сейчас ничего не пишется.",
        "canceling": "⏹ Останавливаю…",
        "mode_pick": "Как мне отвечать? Сейчас: {current}.",
        "mode_set": "✅ Режим: {name}. Действует со следующего сообщения.",
        "stats": (
            "📊 Ваша статистика\n"
            "Сообщений: {messages}\nОтветов: {answers}\nРазговоров: {conversations}\n"
            "Токенов: {prompt_tokens} на входе, {completion_tokens} на выходе\nСредняя скорость: {speed}"
        ),
        "status": (
            "🖥 Сервис\nВ очереди: {queued}\nОтвечается: {generating}\nВоркеров: {workers}\n"
            "Модель: {model}\nСкорость в последнее время: {speed}"
        ),
        "admins_only": "Эта команда только для администраторов ассистента.",
        "unknown": "—",
        "tokens_per_second": "{value} ток/с",
        "seconds": "{value} с",
        "minutes": "{value} мин",
        "button_regenerate": "🔄 Заново",
        "button_new": "🆕 Новый чат",
        "button_retry": "🔁 Повторить",
        "button_stop": "⏹ Стоп",
        "access_requested": (
            "👋 Это частный ассистент. Я попросил администраторов впустить вас; напишу, как только они решат."
        ),
        "access_pending": "⏳ Ваш запрос на доступ ждёт администратора. Я напишу, когда он решит.",
        "access_granted": "✅ Теперь можно со мной разговаривать. Просто напишите вопрос.",
        "access_request_admin": "🔔 {name} (id {id}) просит доступ. Впустить?",
        "button_allow": "✅ Впустить",
        "button_deny": "🚫 Отказать",
        "access_allowed": "✅ {name} теперь может разговаривать с ассистентом.",
        "access_blocked": "🚫 {name} заблокирован(а).",
        "access_usage": "Как писать: /{command} <id пользователя Telegram>",
        "users_header": "👥 Люди\n",
        "users_line": "{mark} {name} (id {id})",
        "users_empty": "Доступ ещё никто не просил.",
        "web_link": "🔗 Ваша личная ссылка на веб-чат, с теми же разговорами. Она открывается один раз, "
        "в течение {hours} ч; никому её не передавайте:\n{link}",
        "web_unavailable": "Веб-чат на этом сервере не настроен (не задан PUBLIC_URL).",
        "web_private_only": "Пришлите /web мне в личном чате: ссылка личная.",
        "error": "⚠️ У меня что-то пошло не так. Попробуйте ещё раз.",
    },
}

LANGUAGES = tuple(TEXTS)


def language_of(code: str | None) -> str:
    """Russian for a Russian Telegram interface, English for everything else."""
    return "ru" if code and code.lower().split("-")[0] == "ru" else "en"


def t(lang: str, key: str, **values: object) -> str:
    return TEXTS.get(lang, TEXTS["en"])[key].format(**values)


def failure(lang: str, reason: str | None) -> str:
    """A failed answer explained in the user's language, by the kind the worker recorded."""
    key = f"failed_{reason}"
    return t(lang, key if key in TEXTS["en"] else "failed_error")


def duration(lang: str, seconds: float) -> str:
    if seconds < 90:
        return t(lang, "seconds", value=max(1, round(seconds)))
    return t(lang, "minutes", value=round(seconds / 60))
