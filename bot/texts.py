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
            "/chats: your conversations: switch back to one, or delete it\n"
            "/export: the current conversation as a file (/export all: everything kept about you)\n"
            "/prompt: your own standing instructions\n"
            "/voice: the language of your voice notes (en, ru, … or auto)\n"
            "/docs: your documents: see them, or delete one\n"
            "/retry: write the last answer again\n"
            "/cancel: stop the answer being written\n"
            "/mode: choose how I answer\n"
            "/stats: your usage\n"
            "/web: a personal link to the same conversations in a browser\n"
            "/signout: sign out of the web chat everywhere and end your API tokens\n"
            "/help: this list\n\n"
            "In groups I answer when mentioned or replied to. I understand text and voice notes: "
            "reply to my 🎤 transcript with the right words to correct it. Send me a document (PDF, "
            "DOCX, HTML, Markdown, text), with your question as its caption or after it: I answer "
            "from its text and say where."
        ),
        "help_admin": (
            "\n\nAdmins: /status shows the queue, workers and model; /users lists who asked for "
            "access; /allow and /block with a user id let someone in or keep them out; /quota sets "
            "one person's token quotas; /signout with a user id ends their web sessions and API tokens."
        ),
        "queued": "⏳ In the queue: {position}",
        "queued_eta": "⏳ In the queue: {position}, about {eta}",
        "thinking": "✍️ Thinking…",
        "stopped": "⏹ Stopped.",
        "failed_error": "⚠️ Something went wrong while I was writing the answer. Please try again.",
        "failed_timeout": "⚠️ The answer took too long and was stopped. Try a shorter question.",
        "failed_context_length": "⚠️ Your message is too long for the model. Please shorten it or split it.",
        "failed_voice_unreadable": "⚠️ I could not play this voice note. Please record it again.",
        "failed_voice_empty": "🎤 I heard no speech in this voice note.",
        "failed_voice_too_long": "⚠️ This voice note is too long for me to transcribe. Keep it shorter.",
        "failed_voice_language": "⚠️ My speech model does not know the language set with /voice. "
        "Try /voice auto, or write your question.",
        "failed_voice_unavailable": "⚠️ I cannot transcribe voice notes right now. Please write instead.",
        "listening": "🎤 Listening…",
        "transcript": "🎤 {text}",
        "voice_too_big": "⚠️ This file is too large: bots may download at most 20 MB.",
        "document_reading": "📄 Reading «{name}»…",
        "document_progress": "📄 Reading «{name}»: page {page} of {pages}",
        "document_ready": (
            "📄 «{name}» is read. Ask me about it: I answer from its text and say where it says so."
        ),
        "document_ready_pages": (
            "📄 «{name}» is read ({pages} pages). Ask me about it: I answer from its text and say where "
            "it says so."
        ),
        "failed_document_unsupported": (
            "⚠️ I read PDF, Word (DOCX), HTML, Markdown and text files, and «{name}» is none of them."
        ),
        "failed_document_unreadable": "⚠️ «{name}» is damaged: I could not read it.",
        "failed_document_encrypted": "⚠️ «{name}» is protected by a password. Send it without one.",
        "failed_document_no_text": (
            "⚠️ «{name}» has no text in it that I can read (a scan, or pictures of pages)."
        ),
        "failed_document_too_large": "⚠️ «{name}» is longer than I read ({detail}).",
        "failed_document_too_costly": "⚠️ Reading «{name}» took longer than a document may, so I stopped.",
        "failed_document_interrupted": "⚠️ I stopped while reading «{name}». Please send it again.",
        "sources": "📄 Sources: {places}",
        "source_page": "«{name}», p. {page}",
        "docs_empty": (
            "You have sent me no documents. Send a PDF, DOCX, HTML, Markdown or text file to ask about it."
        ),
        "docs_list": "Your documents (they answer questions in the conversation they were sent to):",
        "docs_line": "• «{name}»: {state}",
        "docs_state_finished": "read",
        "docs_state_failed": "not read",
        "docs_state_reading": "being read",
        "docs_delete": "🗑 {name}",
        "docs_deleted": "🗑 «{name}» is deleted, with everything I kept of it.",
        "docs_gone": "That document is no longer there.",
        "photo_name": "photo-{n}.jpg",
        "voice_disabled": "🎤 Voice notes are turned off here. Please write your question.",
        "voice_too_long": "⚠️ Voice notes may be at most {limit} seconds long here.",
        "voice_language": "🎤 Your voice notes: {language}. Change: /voice en, /voice ru, … or /voice auto.",
        "voice_language_auto": "detected in each note",
        "voice_language_bad": "⚠️ Give a two-letter language code (en, ru, …) or auto.",
        "failed_worker_lost": "⚠️ I was interrupted while writing the answer. Please try again.",
        "failed_model_unavailable": "⚠️ The model is not reachable right now. Please try again later.",
        "empty_answer": "🤷 The model had nothing to say. Try asking differently.",
        "gateway_down": "⚠️ The assistant is unavailable right now. Please try again in a minute.",
        "busy": "⚠️ Too many people are asking right now. Please try again in a minute.",
        "too_long": "⚠️ Your message is too long: at most {limit} characters, please.",
        "rejected": "⚠️ I could not take this message: {detail}",
        "text_only": "I can read text, voice notes and documents only. Please write or say your question.",
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
        "signed_out": "🔒 Signed out everywhere. Web sign-ins and API tokens ended: {count}.",
        "signed_out_other": "🔒 Web sign-ins and API tokens of id {id} ended: {count}.",
        "signout_usage": "Usage: /signout (your own) or, for admins, /signout <Telegram user id>",
        "web_link": "🔗 Your personal link to the web chat, with the same conversations. It opens once, "
        "within {hours} h; keep it to yourself:\n{link}",
        "web_unavailable": "The web chat is not set up on this server (PUBLIC_URL is not set).",
        "web_private_only": "Send /web to me in a private chat: the link is personal.",
        "error": "⚠️ Something went wrong on my side. Please try again.",
        "chats_header": "💬 Your conversations here (▶ is the current one). Tap one to continue it:",
        "chats_empty": "No conversations here yet. Just write to start one.",
        "chat_switched": "↩️ Back to “{title}”. Your next message continues it.",
        "chat_deleted": "🗑 Deleted “{title}”.",
        "chat_busy": "An answer in that conversation is still being written; try again when it is done.",
        "chat_gone": "That conversation no longer exists.",
        "untitled": "Untitled",
        "button_delete": "🗑",
        "export_caption": "📄 “{title}”",
        "export_all_caption": "📦 Everything kept about you. To have it deleted, ask an admin.",
        "export_empty": "This conversation is empty: nothing to export yet.",
        "prompt_show": (
            "📝 Your instructions (added after the owner's):\n\n{text}\n\n/prompt off removes them."
        ),
        "prompt_none": (
            "You have no instructions of your own. /prompt <text> adds some, for example "
            "“/prompt Answer in short sentences.” (at most {limit} characters); they are added after "
            "the owner's and apply from your next message."
        ),
        "prompt_set": "✅ Saved. They apply from your next message.",
        "prompt_off": "✅ Your instructions are removed.",
        "prompt_too_long": "⚠️ At most {limit} characters, please.",
        "quota_exceeded": "⏳ You have used your {period} quota of {limit} tokens. It starts anew at {when}.",
        "period_daily": "daily",
        "period_monthly": "monthly",
        "quota_line_day": "Today: {used} tokens of {limit}",
        "quota_line_month": "This month: {used} tokens of {limit}",
        "quota_no_limit": "no limit",
        "quota_resets": "(starts anew at {when})",
        "quota_usage": (
            "Usage: /quota <Telegram user id> <tokens a day> [<tokens a month>]; “-” is the default."
        ),
        "quota_set": "✅ Quotas of {id}: {day} a day, {month} a month.",
        "default_quota": "the default",
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
            "/chats — ваши разговоры: вернуться к одному или удалить\n"
            "/export — текущий разговор файлом (/export all — всё, что хранится о вас)\n"
            "/prompt — ваши постоянные инструкции\n"
            "/voice — язык ваших голосовых (ru, en, … или auto)\n"
            "/docs — ваши документы: посмотреть или удалить\n"
            "/retry — написать последний ответ заново\n"
            "/cancel — остановить ответ\n"
            "/mode — выбрать стиль ответов\n"
            "/stats — ваша статистика\n"
            "/web — личная ссылка на те же разговоры в браузере\n"
            "/signout — выйти из веб-чата везде и отозвать ваши API-токены\n"
            "/help — этот список\n\n"
            "В группах я отвечаю, когда меня упоминают или отвечают на моё сообщение. Понимаю текст и "
            "голосовые: ответьте на мою расшифровку 🎤 правильными словами, чтобы исправить её. "
            "Пришлите документ (PDF, DOCX, HTML, Markdown, текст) с вопросом в подписи или следом: "
            "отвечу по его тексту и скажу, где это написано."
        ),
        "help_admin": (
            "\n\nДля админов: /status — очередь, воркеры и модель; /users — кто просил доступ; "
            "/allow и /block с id пользователя — впустить или не пускать; /quota — лимиты токенов человека; "
            "/signout с id — закрыть его входы в веб-чат и API-токены."
        ),
        "queued": "⏳ В очереди: {position}",
        "queued_eta": "⏳ В очереди: {position}, примерно {eta}",
        "thinking": "✍️ Думаю…",
        "stopped": "⏹ Остановлено.",
        "failed_error": "⚠️ Что-то пошло не так, пока я писал ответ. Попробуйте ещё раз.",
        "failed_timeout": (
            "⚠️ Ответ занял слишком много времени и был остановлен. Попробуйте вопрос покороче."
        ),
        "failed_context_length": "⚠️ Сообщение слишком длинное для модели. Сократите его или разбейте.",
        "failed_voice_unreadable": "⚠️ Не удалось воспроизвести это голосовое. Запишите его ещё раз.",
        "failed_voice_empty": "🎤 В этом голосовом я не услышал речи.",
        "failed_voice_too_long": "⚠️ Это голосовое слишком длинное для расшифровки. Запишите покороче.",
        "failed_voice_language": "⚠️ Моя модель речи не знает язык, выбранный в /voice. "
        "Попробуйте /voice auto или напишите вопрос.",
        "failed_voice_unavailable": "⚠️ Сейчас я не могу расшифровывать голосовые. Напишите вопрос текстом.",
        "listening": "🎤 Слушаю…",
        "transcript": "🎤 {text}",
        "voice_too_big": "⚠️ Файл слишком большой: боты могут скачивать не больше 20 МБ.",
        "document_reading": "📄 Читаю «{name}»…",
        "document_progress": "📄 Читаю «{name}»: страница {page} из {pages}",
        "document_ready": (
            "📄 «{name}» прочитан. Спрашивайте: отвечу по его тексту и скажу, где это написано."
        ),
        "document_ready_pages": (
            "📄 «{name}» прочитан ({pages} стр.). Спрашивайте: отвечу по его тексту "
            "и скажу, где это написано."
        ),
        "failed_document_unsupported": (
            "⚠️ Я читаю PDF, Word (DOCX), HTML, Markdown и текстовые файлы, а «{name}» — ни то, ни другое."
        ),
        "failed_document_unreadable": "⚠️ Файл «{name}» повреждён: прочитать его не удалось.",
        "failed_document_encrypted": "⚠️ «{name}» защищён паролем. Пришлите его без пароля.",
        "failed_document_no_text": (
            "⚠️ В «{name}» нет текста, который я могу прочитать (это скан или картинки страниц)."
        ),
        "failed_document_too_large": "⚠️ «{name}» длиннее, чем я читаю ({detail}).",
        "failed_document_too_costly": (
            "⚠️ Чтение «{name}» заняло больше времени, чем отведено на документ, и я его остановил."
        ),
        "failed_document_interrupted": "⚠️ Я остановился, читая «{name}». Пришлите его ещё раз.",
        "sources": "📄 Источники: {places}",
        "source_page": "«{name}», стр. {page}",
        "docs_empty": (
            "Вы не присылали мне документов. Пришлите PDF, DOCX, HTML, Markdown или текстовый файл и "
            "спросите о нём."
        ),
        "docs_list": "Ваши документы (отвечают на вопросы в том разговоре, куда их прислали):",
        "docs_line": "• «{name}»: {state}",
        "docs_state_finished": "прочитан",
        "docs_state_failed": "не прочитан",
        "docs_state_reading": "читается",
        "docs_delete": "🗑 {name}",
        "docs_deleted": "🗑 «{name}» удалён вместе со всем, что я о нём хранил.",
        "docs_gone": "Этого документа уже нет.",
        "photo_name": "фото-{n}.jpg",
        "voice_disabled": "🎤 Голосовые здесь выключены. Напишите вопрос текстом.",
        "voice_too_long": "⚠️ Голосовые здесь — не длиннее {limit} с.",
        "voice_language": "🎤 Язык ваших голосовых: {language}. /voice ru, /voice en, … или /voice auto.",
        "voice_language_auto": "определяется в каждом",
        "voice_language_bad": "⚠️ Укажите двухбуквенный код языка (ru, en, …) или auto.",
        "failed_worker_lost": "⚠️ Меня прервали, пока я писал ответ. Попробуйте ещё раз.",
        "failed_model_unavailable": "⚠️ Модель сейчас недоступна. Попробуйте чуть позже.",
        "empty_answer": "🤷 Модели нечего сказать. Попробуйте спросить иначе.",
        "gateway_down": "⚠️ Ассистент сейчас недоступен. Попробуйте через минуту.",
        "busy": "⚠️ Сейчас слишком много вопросов. Попробуйте через минуту.",
        "too_long": "⚠️ Слишком длинное сообщение: не больше {limit} символов, пожалуйста.",
        "rejected": "⚠️ Не получилось принять сообщение: {detail}",
        "text_only": "Я понимаю только текст, голосовые и документы. Напишите или скажите вопрос.",
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
        "signed_out": "🔒 Вы вышли везде. Закрыто входов в веб-чат и API-токенов: {count}.",
        "signed_out_other": "🔒 У id {id} закрыто входов в веб-чат и API-токенов: {count}.",
        "signout_usage": "Как писать: /signout (для себя) или, для админов, "
        "/signout <id пользователя Telegram>",
        "web_link": "🔗 Ваша личная ссылка на веб-чат, с теми же разговорами. Она открывается один раз, "
        "в течение {hours} ч; никому её не передавайте:\n{link}",
        "web_unavailable": "Веб-чат на этом сервере не настроен (не задан PUBLIC_URL).",
        "web_private_only": "Пришлите /web мне в личном чате: ссылка личная.",
        "error": "⚠️ У меня что-то пошло не так. Попробуйте ещё раз.",
        "chats_header": "💬 Ваши разговоры здесь (▶ — текущий). Нажмите, чтобы продолжить:",
        "chats_empty": "Здесь пока нет разговоров. Просто напишите, чтобы начать.",
        "chat_switched": "↩️ Вернулись к «{title}». Следующее сообщение продолжит его.",
        "chat_deleted": "🗑 «{title}» удалён.",
        "chat_busy": "В том разговоре ещё пишется ответ; попробуйте, когда он закончится.",
        "chat_gone": "Этого разговора больше нет.",
        "untitled": "Без названия",
        "button_delete": "🗑",
        "export_caption": "📄 «{title}»",
        "export_all_caption": "📦 Всё, что хранится о вас. Чтобы удалить это, обратитесь к администратору.",
        "export_empty": "Разговор пуст: выгружать пока нечего.",
        "prompt_show": (
            "📝 Ваши инструкции (добавляются после инструкций владельца):\n\n{text}\n\n/prompt off — убрать."
        ),
        "prompt_none": (
            "Своих инструкций у вас нет. /prompt <текст> добавит их, например "
            "«/prompt Отвечай короткими фразами.» (не больше {limit} символов); они добавляются после "
            "инструкций владельца и действуют со следующего сообщения."
        ),
        "prompt_set": "✅ Сохранено. Действует со следующего сообщения.",
        "prompt_off": "✅ Ваши инструкции убраны.",
        "prompt_too_long": "⚠️ Не больше {limit} символов, пожалуйста.",
        "quota_exceeded": "⏳ Вы израсходовали {period} лимит в {limit} токенов. Он обновится {when}.",
        "period_daily": "дневной",
        "period_monthly": "месячный",
        "quota_line_day": "Сегодня: {used} токенов из {limit}",
        "quota_line_month": "В этом месяце: {used} токенов из {limit}",
        "quota_no_limit": "без лимита",
        "quota_resets": "(обновится {when})",
        "quota_usage": (
            "Как писать: /quota <id пользователя Telegram> <токенов в день> [<токенов в месяц>]; "
            "«-» — по умолчанию."
        ),
        "quota_set": "✅ Лимиты {id}: {day} в день, {month} в месяц.",
        "default_quota": "по умолчанию",
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
