"""Documents and questions made for measuring retrieval (bench.retrieval), in Russian and English.

Each document is a list of pages; each question names the words its answer passage holds (`key`)
and is worded differently from the text: other forms of the same words, other words for the same
things, the way people ask.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    document: str
    text: str
    key: str  # words of the page that answers it


DOCUMENTS: dict[str, list[str]] = {
    "магазин.pdf": [
        "Доставка по городу занимает от одного до двух рабочих дней. Курьер звонит за час до приезда. "
        "Доставка бесплатна для заказов дороже трёх тысяч рублей.",
        "Оплатить заказ можно банковской картой на сайте или наличными курьеру. Мы не принимаем "
        "криптовалюту. Чек приходит на электронную почту после оплаты.",
        "Вернуть товар надлежащего качества можно в течение четырнадцати дней с момента получения. "
        "Упаковка и ярлыки должны быть сохранены. Деньги возвращаются на карту за десять дней.",
        "Гарантия на электронику составляет один год. Гарантийный ремонт выполняет сервисный центр "
        "производителя. Для ремонта нужен гарантийный талон.",
        "Пункты самовывоза работают ежедневно с девяти утра до девяти вечера. Заказ хранится в пункте "
        "пять дней. Для получения нужен код из СМС.",
        "Постоянные покупатели получают бонусные баллы: пять процентов от суммы покупки. Баллами можно "
        "оплатить до половины следующего заказа. Баллы сгорают через год.",
        "Служба поддержки отвечает в чате круглосуточно. По телефону операторы доступны с восьми до "
        "двадцати часов. Жалобы рассматриваются в течение трёх дней.",
        "Подарочные сертификаты продаются номиналом от одной до пятидесяти тысяч рублей. Сертификат "
        "действует шесть месяцев. Остаток по сертификату не возвращается.",
    ],
    "аренда.pdf": [
        "Арендатор вносит плату за квартиру до пятого числа каждого месяца. Размер платы составляет "
        "сорок пять тысяч рублей. Коммунальные услуги оплачиваются отдельно по счётчикам.",
        "При заключении договора арендатор передаёт залог, равный месячной плате. Залог возвращается "
        "при выезде, если имущество не повреждено.",
        "Домашних животных держать в квартире можно только с письменного согласия собственника. "
        "Ущерб, причинённый животными, возмещает арендатор.",
        "Курение в квартире и на балконе запрещено. За нарушение запрета удерживается штраф из залога.",
        "Собственник вправе осматривать квартиру не чаще одного раза в месяц, предупредив арендатора "
        "за сутки.",
        "Договор заключается на одиннадцать месяцев. Расторгнуть его досрочно можно, уведомив другую "
        "сторону письменно за тридцать дней.",
        "Мелкий ремонт, например замену лампочек и смесителей, арендатор делает сам. Крупный ремонт "
        "и поломки техники оплачивает собственник.",
        "Гостям разрешено оставаться в квартире не дольше семи ночей подряд. Передавать квартиру "
        "в субаренду запрещено.",
    ],
    "router-manual.pdf": [
        "To reset the router to factory settings, hold the recessed button on the back for ten seconds "
        "until the lights blink. All your settings will be erased.",
        "The default Wi-Fi password is printed on the label under the device. Change it after the first "
        "login through the web interface at 192.168.0.1.",
        "The router supports the 2.4 GHz and 5 GHz bands. The 5 GHz band is faster but covers a smaller "
        "area and passes walls poorly.",
        "Firmware updates are installed automatically every night at 3 a.m. when an update is available. "
        "Automatic updates can be turned off in the Maintenance menu.",
        "Parental controls let you block websites by category and set time limits for each device. "
        "Schedules apply per device, not per user.",
        "A guest network keeps visitors away from your own devices. It has its own name and password "
        "and can be limited in speed.",
        "If the internet light is red, check that the cable from your provider is plugged into the "
        "yellow WAN port, then restart the router.",
        "The warranty covers manufacturing defects for two years from the date of purchase. Damage from "
        "water or power surges is not covered.",
    ],
    "handbook.pdf": [
        "Employees are entitled to twenty-five days of paid vacation per year. Vacation requests must be "
        "submitted at least two weeks in advance.",
        "Working hours are flexible between 8 a.m. and 7 p.m., with core hours from 11 a.m. to 3 p.m. "
        "when everyone is expected to be available.",
        "Remote work is allowed up to three days a week with the manager's approval. Employees must be "
        "reachable by chat during core hours.",
        "Travel expenses are reimbursed within thirty days when receipts are submitted through the "
        "expenses portal. Taxis are reimbursed only after 10 p.m.",
        "Sick leave does not require a doctor's note for the first three days. From the fourth day a "
        "medical certificate is needed.",
        "New employees have a probation period of three months, after which their manager holds a "
        "review meeting.",
        "Every employee has an annual training budget of one thousand euros for courses, books and "
        "conferences related to their work.",
        "Laptops and phones issued by the company must be returned on the last working day. Personal "
        "data on them is wiped.",
    ],
}

QUESTIONS: list[Question] = [
    Question("магазин.pdf", "Сколько дней ждать курьера с покупкой?", "от одного до двух рабочих дней"),
    Question("магазин.pdf", "Можно ли расплатиться наличкой?", "наличными курьеру"),
    Question("магазин.pdf", "Я хочу сдать обратно кофточку, какой срок?", "четырнадцати дней"),
    Question("магазин.pdf", "Сколько действует гарантия на телефон?", "Гарантия на электронику"),
    Question("магазин.pdf", "До скольких открыт пункт выдачи заказов?", "до девяти вечера"),
    Question("магазин.pdf", "Как копить бонусы и на что их тратить?", "бонусные баллы"),
    Question("магазин.pdf", "Как связаться с поддержкой ночью?", "круглосуточно"),
    Question("магазин.pdf", "Какой срок у подарочного сертификата?", "шесть месяцев"),
    Question("аренда.pdf", "До какого числа нужно платить за жильё?", "до пятого числа"),
    Question("аренда.pdf", "Вернут ли мне депозит при выезде?", "Залог возвращается"),
    Question("аренда.pdf", "Можно ли жить с кошкой?", "Домашних животных"),
    Question("аренда.pdf", "Можно ли курить на балконе?", "Курение в квартире"),
    Question("аренда.pdf", "Как часто хозяин может приходить с проверкой?", "осматривать квартиру"),
    Question("аренда.pdf", "Как расторгнуть договор раньше срока?", "за тридцать дней"),
    Question("аренда.pdf", "Кто платит, если сломалась стиральная машина?", "поломки техники"),
    Question("аренда.pdf", "Сколько ночей у меня могут гостить друзья?", "семи ночей"),
    Question("router-manual.pdf", "How do I restore the factory defaults?", "hold the recessed button"),
    Question("router-manual.pdf", "Where can I find the wifi password?", "printed on the label"),
    Question("router-manual.pdf", "Which band has the better range?", "covers a smaller area"),
    Question("router-manual.pdf", "How can I stop the automatic firmware update?", "can be turned off"),
    Question("router-manual.pdf", "Can I limit my kids' screen time?", "Parental controls"),
    Question("router-manual.pdf", "How do I give visitors internet access?", "guest network"),
    Question("router-manual.pdf", "The internet LED is red, what should I do?", "yellow WAN port"),
    Question("router-manual.pdf", "Is lightning damage covered by the warranty?", "power surges"),
    Question("handbook.pdf", "How many holidays do I get a year?", "twenty-five days of paid vacation"),
    Question("handbook.pdf", "When must I be online during the day?", "core hours from 11 a.m."),
    Question("handbook.pdf", "Can I work from home?", "Remote work is allowed"),
    Question("handbook.pdf", "When will my taxi costs be paid back?", "reimbursed within thirty days"),
    Question("handbook.pdf", "Do I need a doctor's note when I am ill?", "medical certificate"),
    Question("handbook.pdf", "How long is the trial period for new hires?", "probation period"),
    Question("handbook.pdf", "Is there money for courses and conferences?", "training budget"),
    Question("handbook.pdf", "What happens to my laptop when I leave?", "must be returned on the last"),
]
