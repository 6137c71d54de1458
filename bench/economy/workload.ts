/**
 * The two workloads of the token economy benchmark and the scripted model
 * that replies to them. The support conversation is one session of 10
 * user messages. Each gets its reply after one or two tool calls, 40 turns
 * in all, and the tool results make the history grow. The FAQ stream is 60
 * questions from 12 users, each in a new session, most of them one of six
 * frequent questions asked in the same words. The loopback Bedrock server
 * replies to every call through {@link respond}, by the content of the
 * request, because caches and summaries change which calls reach it.
 */
import type { WorkerToolConfig } from '../../lambda/shared/contracts';
import {
  textResponse,
  toolUseResponse,
  type RecordedRequest,
  type ScriptedResponse,
} from '../../test/support/bedrock-server';

/** Model of the agents: Claude Sonnet 4.5 through the US inference profile. */
export const MAIN_MODEL = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';
/** Model that writes summaries: Claude Haiku 4.5 through the US inference profile. */
export const SUMMARY_MODEL = 'us.anthropic.claude-haiku-4-5-20251001-v1:0';

export const SUPPORT_AGENT = 'support';
export const FAQ_AGENT = 'faq';

const POLICY_PARAGRAPHS = [
  'You are the customer support agent of Northwind Home, an online shop for office furniture and accessories.',
  'Answer in a friendly, precise tone. Use the tools to look orders, shipments, stock and help articles up before you state a fact about them, and never guess an order status.',
  'Orders ship from one of four warehouses. Standard delivery takes three to five working days, express delivery one to two working days. Large items such as desks ship by freight and the carrier calls to agree on a delivery slot.',
  'A shipped order cannot be changed. Items can be added only as a new order. An order that has not shipped can be changed or cancelled free of charge.',
  'Returns are accepted within 30 days of delivery for unused items in their original packaging. Damaged or faulty items can be returned within 90 days, and the shop pays the return shipping. Refunds reach the original payment method within five working days of the return scan.',
  'When a parcel shows as delivered but the customer did not receive it, ask them to check with neighbours and the building reception, wait one working day, then open a carrier claim. Claims take up to ten working days.',
  'Assembly is offered for desks and chairs in selected cities for a fixed fee. It is booked after delivery through the help centre.',
  'Never promise a delivery date that the tracking data does not support. Never share another customer\'s data. Escalate to a human agent when the customer asks for it or when a claim exceeds 500 dollars.',
];

/**
 * System prompt of the support agent: the shop's support policy, 964
 * tokens by the loopback server's count, and with the tool definitions
 * above the 1,024 tokens Claude Sonnet 4.5 needs before it caches a prefix.
 */
export const SUPPORT_SYSTEM_PROMPT = [...POLICY_PARAGRAPHS, ...POLICY_PARAGRAPHS.slice(1), ...POLICY_PARAGRAPHS.slice(2)].join('\n\n');

const FAQ_ENTRIES: ReadonlyArray<readonly [question: string, answer: string]> = [
  [
    'What is your return policy?',
    'You can return unused items within 30 days of delivery in their original packaging. Damaged or faulty items can be returned within 90 days and we pay the return shipping. Start a return from your order page; the refund reaches your payment method within five working days of the return scan.',
  ],
  [
    'How long does delivery take?',
    'Standard delivery takes three to five working days and express delivery one to two working days. Desks and other large items ship by freight, and the carrier calls you to agree on a delivery slot.',
  ],
  [
    'Do you offer assembly?',
    'Yes, for desks and chairs in selected cities, for a fixed fee. You can book assembly after delivery through the help centre, which also lists the cities.',
  ],
  [
    'Can I change my order?',
    'An order that has not shipped can be changed or cancelled free of charge from your order page. Once an order has shipped it cannot be changed, but you can place a new order for extra items.',
  ],
  [
    'How do I track my parcel?',
    'Open your order page and select Track shipment. You will see each scan of the parcel. Freight deliveries also show the delivery slot once the carrier has agreed it with you.',
  ],
  [
    'My parcel shows as delivered but I did not get it. What now?',
    'Please check with your neighbours and your building reception first. If the parcel has not turned up after one working day, contact us and we will open a claim with the carrier, which takes up to ten working days.',
  ],
];

/**
 * System prompt of the FAQ agent: the shop's policy and its frequent
 * answers, 1,264 tokens by the loopback server's count.
 */
export const FAQ_SYSTEM_PROMPT = [
  'You answer frequent questions of Northwind Home customers. Answer briefly from the policy and the answers below.',
  ...POLICY_PARAGRAPHS.slice(1),
  ...FAQ_ENTRIES.map(([question, answer]) => `Q: ${question}\nA: ${answer}`),
  ...POLICY_PARAGRAPHS.slice(1),
  ...POLICY_PARAGRAPHS.slice(3),
].join('\n\n');

const orderSchema = { type: 'object', properties: { orderId: { type: 'string' } }, required: ['orderId'] };

/** Tools of the support agent. Their Lambda functions are registered by {@link toolHandlers}. */
export const SUPPORT_TOOLS: WorkerToolConfig[] = [
  {
    name: 'lookup_order',
    description: 'Look up an order by its id and return its items, payment and shipping details.',
    impact: 'low',
    inputSchema: orderSchema,
    functionName: 'bench-lookup-order',
  },
  {
    name: 'track_shipment',
    description: 'Return the carrier scans of the shipment of an order, newest last.',
    impact: 'low',
    inputSchema: orderSchema,
    functionName: 'bench-track-shipment',
  },
  {
    name: 'search_help_center',
    description: 'Search the help centre and return the best matching article in full.',
    impact: 'low',
    inputSchema: { type: 'object', properties: { query: { type: 'string' } }, required: ['query'] },
    functionName: 'bench-search-help-center',
  },
  {
    name: 'check_stock',
    description: 'Return the stock of a product in each warehouse.',
    impact: 'low',
    inputSchema: { type: 'object', properties: { sku: { type: 'string' } }, required: ['sku'] },
    functionName: 'bench-check-stock',
  },
];

/** Returns an order record of about 1,200 characters of JSON. */
function orderRecord(orderId: string): object {
  return {
    orderId,
    placedAt: '2026-11-24T10:12:00Z',
    status: orderId === 'ORD-48213' ? 'shipped' : 'delivered',
    customer: { name: 'Alex Doe', email: 'alex@example.com', address: '12 Harbour Street, Flat 4, Springfield 40211' },
    items: [
      { sku: 'SD-140', name: 'Standing desk 140 x 70 cm, oak top, black frame', quantity: 1, unitPrice: 649 },
      { sku: 'CM-07', name: 'Cable management tray, black', quantity: 2, unitPrice: 24.5 },
      { sku: 'FR-33', name: 'Anti-fatigue floor mat', quantity: 1, unitPrice: 59 },
    ],
    payment: { method: 'card', last4: '4242', captured: 757, currency: 'USD' },
    shipping: { method: 'freight', carrier: 'RoadLine Freight', warehouse: 'WH-3 Columbus', trackingId: `RL-${orderId.slice(4)}-US` },
    notes: ['Customer asked for a call before delivery.', 'Gift receipt requested.'],
  };
}

/** Returns the carrier scans of a shipment: about 40 lines, 4,000 characters. */
function trackingHistory(orderId: string): string {
  const places = ['Columbus OH hub', 'Indianapolis IN depot', 'Chicago IL sort centre', 'Springfield IL depot'];
  const lines: string[] = [];
  for (let i = 0; i < 40; i++) {
    const day = String(25 + Math.floor(i / 10)).padStart(2, '0');
    const hour = String(6 + (i % 10)).padStart(2, '0');
    let event = i % 3 === 0 ? 'Arrived at facility' : 'Departed facility';
    if (i === 31) event = 'DELAYED: held at hub, capacity exceeded';
    lines.push(`2026-11-${day} ${hour}:15 ${places[i % places.length]} - ${event} - shipment ${orderId}`);
  }
  if (orderId === 'ORD-47790') lines.push('2026-11-29 14:02 Springfield IL - DELIVERED, left at front door');
  return lines.join('\n');
}

/** Returns a help centre article of about 3,500 characters for `query`. */
function helpArticle(query: string): string {
  const sentences = [
    `This article answers questions about ${query}.`,
    'Northwind Home ships every order from the warehouse closest to the delivery address that has all items in stock.',
    'Freight carriers deliver large items on a slot agreed by phone, and the slot appears on the order page once agreed.',
    'Parcels can be held at a hub when the hub runs over capacity, which usually adds one to two working days.',
    'Damaged deliveries should be photographed before the packaging is thrown away, because the carrier claim needs the photos.',
    'A claim is opened by support and takes up to ten working days; the customer receives an email at each step.',
    'Refunds are paid to the original payment method, and gift cards are refunded as store credit.',
    'Assembly is booked after delivery, in the cities listed in the help centre, for a fixed fee per item.',
  ];
  const paragraphs: string[] = [];
  for (let i = 0; i < 6; i++) paragraphs.push(sentences.slice(i % 3).join(' '));
  return paragraphs.join('\n\n');
}

/** Returns the stock of a product in four warehouses. */
function stockRecord(sku: string): object {
  return {
    sku,
    name: 'Monitor arm, single, gas spring, black',
    warehouses: [
      { id: 'WH-1 Newark', available: 0, nextDelivery: '2026-12-12' },
      { id: 'WH-2 Dallas', available: 14 },
      { id: 'WH-3 Columbus', available: 3 },
      { id: 'WH-4 Reno', available: 27 },
    ],
  };
}

/** Returns the Lambda handlers of the support agent's tools, by function name. */
export function toolHandlers(): Record<string, (input: any) => unknown> {
  return {
    'bench-lookup-order': (input: { orderId: string }) => orderRecord(input.orderId),
    'bench-track-shipment': (input: { orderId: string }) => trackingHistory(input.orderId),
    'bench-search-help-center': (input: { query: string }) => helpArticle(input.query),
    'bench-check-stock': (input: { sku: string }) => stockRecord(input.sku),
  };
}

interface ToolCall {
  readonly name: string;
  readonly input: Record<string, string>;
}

interface SupportStep {
  readonly message: string;
  readonly calls: readonly ToolCall[];
  readonly answer: string;
}

const lookup = (orderId: string): ToolCall => ({ name: 'lookup_order', input: { orderId } });
const track = (orderId: string): ToolCall => ({ name: 'track_shipment', input: { orderId } });
const help = (query: string): ToolCall => ({ name: 'search_help_center', input: { query } });

/** The support conversation: 10 user messages, each with its tool calls and the reply that follows them. */
export const SUPPORT_STEPS: readonly SupportStep[] = [
  {
    message: 'Hi, I ordered a standing desk last week, order ORD-48213. Where is it?',
    calls: [lookup('ORD-48213'), track('ORD-48213')],
    answer: 'Your standing desk (order ORD-48213) shipped from our Columbus warehouse by freight with RoadLine. It is on its way to the Springfield depot, and the carrier will call you to agree a delivery slot.',
  },
  {
    message: 'The tracking says it was delayed at a hub. Can you check why?',
    calls: [help('parcel delayed at hub')],
    answer: 'The parcel was held at the Columbus hub because the hub ran over capacity. That usually adds one to two working days, and it has moved on since. No action is needed from you.',
  },
  {
    message: 'OK. Is the matching monitor arm MA-220 in stock?',
    calls: [{ name: 'check_stock', input: { sku: 'MA-220' } }],
    answer: 'Yes, the MA-220 monitor arm is in stock: 14 in Dallas, 3 in Columbus and 27 in Reno. Newark is out of stock until 12 December.',
  },
  {
    message: 'Can I add it to the same order?',
    calls: [lookup('ORD-48213')],
    answer: 'Order ORD-48213 has already shipped, so it cannot be changed. You can order the monitor arm as a new order, and it would ship from Columbus within one working day.',
  },
  {
    message: 'What is your return policy if the desk arrives damaged?',
    calls: [help('damaged delivery return')],
    answer: 'If the desk arrives damaged, take photos before you throw the packaging away. Damaged items can be returned within 90 days and we pay the return shipping; the refund reaches your card within five working days of the return scan.',
  },
  {
    message: 'And do you offer assembly in Springfield?',
    calls: [help('assembly service cities')],
    answer: 'Yes, Springfield is one of the assembly cities. You can book assembly for a fixed fee through the help centre once the desk has been delivered.',
  },
  {
    message: 'Please check my other order ORD-47790 too.',
    calls: [lookup('ORD-47790'), track('ORD-47790')],
    answer: 'Order ORD-47790 shows as delivered on 29 November at 14:02, left at your front door in Springfield.',
  },
  {
    message: 'That one shows delivered but I never got it.',
    calls: [help('parcel delivered but not received'), track('ORD-47790')],
    answer: 'I am sorry. Please check with your neighbours and your building reception. If the parcel has not turned up after one working day, we will open a carrier claim, which takes up to ten working days.',
  },
  {
    message: 'I checked with everyone. Can you open a claim for it?',
    calls: [lookup('ORD-47790')],
    answer: 'I have noted a claim for order ORD-47790 with RoadLine Freight. You will get an email at each step, and the claim takes up to ten working days.',
  },
  {
    message: 'Thanks. Give me a final status of both orders, please.',
    calls: [track('ORD-48213'), track('ORD-47790')],
    answer: 'ORD-48213, your standing desk, is on its way to the Springfield depot after a short hub delay, and the carrier will call you for a slot. ORD-47790 is under a carrier claim, which takes up to ten working days.',
  },
];

/** Number of FAQ questions in the stream. */
export const FAQ_STREAM_LENGTH = 60;
/** Users who ask the FAQ questions. */
export const FAQ_USERS = 12;
/** Share of the stream that is one of the frequent questions, in the same words. */
export const FAQ_REPEAT_SHARE = 0.75;

/** One question of the FAQ stream. */
export interface FaqQuestion {
  readonly userId: string;
  readonly message: string;
}

/**
 * Returns the FAQ stream, the same on every call: a linear congruential
 * generator with a fixed seed picks each user and whether the question is
 * a frequent one or a question of its own.
 */
export function faqStream(): FaqQuestion[] {
  let state = 20261204;
  const next = () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state / 2 ** 31;
  };
  const questions: FaqQuestion[] = [];
  for (let i = 0; i < FAQ_STREAM_LENGTH; i++) {
    const userId = `faq-user-${1 + Math.floor(next() * FAQ_USERS)}`;
    const repeated = next() < FAQ_REPEAT_SHARE;
    const pick = Math.floor(next() * FAQ_ENTRIES.length);
    const message = repeated
      ? FAQ_ENTRIES[pick][0]
      : `Question ${i + 1} of ${userId}: does the standing desk SD-${140 + i} fit a room with a ${200 + i} cm ceiling?`;
    questions.push({ userId, message });
  }
  return questions;
}

type Block = Record<string, any>;
type Message = { role: string; content: Block[] };

function messagesOf(request: RecordedRequest): Message[] {
  return ((request.body as { messages?: Message[] }).messages ?? []) as Message[];
}

/** Returns the texts of the user's own text blocks in `messages`, newest first. */
function userTexts(messages: readonly Message[]): string[] {
  return messages
    .filter((message) => message.role === 'user')
    .flatMap((message) => message.content.map((block) => block.text).filter((text): text is string => typeof text === 'string'))
    .reverse();
}

/**
 * Returns a summary of a transcript as a cheap model might write it: one
 * short line per user request it contains, with the earlier summary first.
 */
function summaryOf(transcript: string): string {
  const earlier = transcript.match(/^\[Summary of the turns before these\] (.*)$/m)?.[1];
  const requests = [...transcript.matchAll(/^\[User\] (.*)$/gm)].map((match) => match[1]);
  const lines = [
    ...(earlier === undefined ? [] : [earlier]),
    ...requests.map((request) => `The user asked: "${request}" The assistant looked it up with the tools and answered.`),
  ];
  return lines.join(' ').slice(0, 2_400);
}

/**
 * Returns the reply to one Converse request of the benchmark. The summary
 * model gets a summary. A support step gets its tool calls when its
 * message is the latest turn, and its answer once the tool results are
 * in. Any other request gets an FAQ answer. Usage is left to the loopback
 * server's token accounting.
 */
export function respond(request: RecordedRequest): ScriptedResponse {
  const messages = messagesOf(request);
  const last = messages.at(-1);
  if (request.modelId === SUMMARY_MODEL) {
    return textResponse(summaryOf(String(last?.content[0]?.text ?? '')));
  }
  const texts = userTexts(messages);
  // The current step is the one whose message is the newest user text that names a step.
  const index = texts.map((text) => SUPPORT_STEPS.findIndex((step) => step.message === text)).find((i) => i >= 0);
  if (index !== undefined) {
    const step = SUPPORT_STEPS[index];
    if (last?.content.some((block) => block.toolResult !== undefined)) return textResponse(step.answer);
    const [first, ...rest] = step.calls.map((call, i) => ({ toolUseId: `step${index + 1}-call${i + 1}`, ...call }));
    return toolUseResponse({ ...first, text: 'Let me check that for you.', parallel: rest });
  }
  const question = String(texts[0] ?? '');
  const entry = FAQ_ENTRIES.find(([faq]) => faq === question);
  return textResponse(
    entry?.[1] ??
      'A standing desk at its highest setting needs about 130 cm of free height, so it fits any room with a standard ceiling. The product page lists the exact range.',
  );
}
