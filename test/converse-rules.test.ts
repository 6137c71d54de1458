/**
 * The loopback Bedrock server's Converse rules and token accounting, driven
 * through the real `@aws-sdk/client-bedrock-runtime`. Each rule has a
 * hand-written request that breaks it, and the server must answer it with
 * the 400 ValidationException that Bedrock returns, before it consumes a
 * scripted response.
 */
import {
  BedrockRuntimeClient,
  ConverseCommand,
  ConverseStreamCommand,
  ValidationException,
  type ConverseCommandInput,
} from '@aws-sdk/client-bedrock-runtime';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import {
  startBedrockServer,
  textResponse,
  toolUseResponse,
  type BedrockServer,
} from './support/bedrock-server';
import { signReasoning } from './support/converse-rules';
import {
  MESSAGE_OVERHEAD_TOKENS,
  TOOL_USE_SYSTEM_PROMPT_TOKENS,
  countInputTokens,
  countTextTokens,
} from './support/converse-tokens';

const MODEL = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';
const CREDENTIALS = { accessKeyId: 'AKIDLOOPBACKTEST', secretAccessKey: 'loopback-secret' };

type Messages = NonNullable<ConverseCommandInput['messages']>;
type Block = Record<string, unknown>;

const TOOL_CONFIG = {
  tools: [
    {
      toolSpec: {
        name: 'lookup_order',
        description: 'Look up an order by id.',
        inputSchema: { json: { type: 'object', properties: { orderId: { type: 'string' } } } },
      },
    },
  ],
};

let server: BedrockServer;
let thinkingServer: BedrockServer;
let lenientServer: BedrockServer;
const clients: BedrockRuntimeClient[] = [];

function clientOf(target: BedrockServer): BedrockRuntimeClient {
  const client = new BedrockRuntimeClient({
    region: 'us-east-1',
    endpoint: target.endpoint,
    credentials: CREDENTIALS,
    maxAttempts: 1,
    requestHandler: new NodeHttpHandler(),
  });
  clients.push(client);
  return client;
}

beforeAll(async () => {
  server = await startBedrockServer();
  thinkingServer = await startBedrockServer({ thinking: true });
  lenientServer = await startBedrockServer({ enforceConverseRules: false });
});

afterAll(async () => {
  clients.forEach((client) => client.destroy());
  await Promise.all([server?.close(), thinkingServer?.close(), lenientServer?.close()]);
});

beforeEach(() => {
  [server, thinkingServer, lenientServer].forEach((target) => target.reset());
});

function user(...content: Block[]) {
  return { role: 'user' as const, content: content as never };
}

function assistant(...content: Block[]) {
  return { role: 'assistant' as const, content: content as never };
}

function use(toolUseId: string): Block {
  return { toolUse: { toolUseId, name: 'lookup_order', input: { orderId: `ORD-${toolUseId}` } } };
}

function result(toolUseId: string, extra: Block = {}): Block {
  return { toolResult: { toolUseId, content: [{ text: `Order ${toolUseId} has shipped.` }], ...extra } };
}

function reasoning(text: string, signature = signReasoning(text)): Block {
  return { reasoningContent: { reasoningText: { text, signature } } };
}

/** Sends `messages` and returns the error the server raised, or undefined when it answered. */
async function rejection(
  messages: Messages,
  options: { target?: BedrockServer; toolConfig?: boolean; stream?: boolean } = {},
): Promise<ValidationException | undefined> {
  const target = options.target ?? server;
  target.script(textResponse('Done.'));
  const input: ConverseCommandInput = {
    modelId: MODEL,
    messages,
    toolConfig: options.toolConfig === false ? undefined : (TOOL_CONFIG as never),
  };
  const client = clientOf(target);
  try {
    if (options.stream) {
      const output = await client.send(new ConverseStreamCommand(input));
      for await (const _event of output.stream ?? []) {
        // Reading the stream to its end surfaces errors sent in it.
      }
    } else {
      await client.send(new ConverseCommand(input));
    }
    return undefined;
  } catch (error) {
    if (error instanceof ValidationException) return error;
    throw error;
  }
}

/** Builds a valid conversation with parallel tool calls, the base of the negative cases. */
function validConversation(): Messages {
  return [
    user({ text: 'Where are my orders A and B?' }),
    assistant({ text: 'Let me check both.' }, use('a'), use('b')),
    user(result('a'), result('b')),
    assistant({ text: 'Both have shipped.' }),
    user({ text: 'Thanks. And order C?' }),
  ];
}

describe('valid requests', () => {
  test('parallel tool conversation accepted', async () => {
    expect(await rejection(validConversation())).toBeUndefined();
    expect(server.pending()).toBe(0);
  });

  test('error result with content accepted', async () => {
    const messages = [
      user({ text: 'Where is order A?' }),
      assistant(use('a')),
      user({ toolResult: { toolUseId: 'a', content: [{ text: 'Lookup failed.' }], status: 'error' } }),
    ];

    expect(await rejection(messages)).toBeUndefined();
  });

  test('tool loop with reasoning accepted', async () => {
    const messages = [
      user({ text: 'Where is order A?' }),
      assistant(reasoning('I should look the order up.'), use('a')),
      user(result('a')),
    ];

    expect(await rejection(messages, { target: thinkingServer })).toBeUndefined();
  });
});

describe('rule violations', () => {
  const cases: Array<[string, () => Messages, string, { toolConfig?: boolean; target?: () => BedrockServer }?]> = [
    [
      'first message from assistant',
      () => [assistant({ text: 'Hello.' }), user({ text: 'Hi.' })],
      'A conversation must start with a user message. Try again with a conversation that starts with a user message.',
    ],
    [
      'two user turns in a row',
      () => [user({ text: 'Hi.' }), user({ text: 'Are you there?' })],
      'A conversation must alternate between user and assistant roles. Make sure the conversation alternates ' +
        'between user and assistant roles and try again.',
    ],
    [
      'message without content',
      () => [user({ text: 'Hi.' }), assistant(), user({ text: 'Hello?' })],
      'The content field in the Message object at messages.1 is empty. Add a ContentBlock object to the content ' +
        'field and try again.',
    ],
    [
      'blank text block',
      () => [user({ text: '  ' })],
      'The text field in the ContentBlock object at messages.0.content.0 is blank. Add text to the text field, and try again.',
    ],
    [
      'tool blocks without toolConfig',
      () => validConversation(),
      'The toolConfig field must be defined when using toolUse and toolResult content blocks.',
      { toolConfig: false },
    ],
    [
      'one parallel result missing',
      () => {
        const messages = validConversation();
        messages[2] = user(result('a'));
        return messages;
      },
      'Expected toolResult blocks at messages.2.content for the following Ids: b',
    ],
    [
      'tool use not answered',
      () => {
        const messages = validConversation();
        messages[2] = user({ text: 'Never mind.' });
        return messages;
      },
      'Expected toolResult blocks at messages.2.content for the following Ids: a, b',
    ],
    [
      'result for another id',
      () => {
        const messages = validConversation();
        messages[2] = user(result('a'), result('c'));
        return messages;
      },
      'Expected toolResult blocks at messages.2.content for the following Ids: b',
    ],
    [
      'more results than uses',
      () => {
        const messages = validConversation();
        messages[2] = user(result('a'), result('b'), result('a'));
        return messages;
      },
      'The number of toolResult blocks at messages.2.content exceeds the number of toolUse blocks of previous turn.',
    ],
    [
      'cut between uses and results',
      () => validConversation().slice(2),
      'The number of toolResult blocks at messages.0.content exceeds the number of toolUse blocks of previous turn.',
    ],
    [
      'result without preceding use',
      () => [user(result('a')), assistant({ text: 'Shipped.' }), user({ text: 'Thanks.' })],
      'The number of toolResult blocks at messages.0.content exceeds the number of toolUse blocks of previous turn.',
    ],
    [
      'error result without content',
      () => {
        const messages = validConversation();
        messages[2] = user(result('a'), { toolResult: { toolUseId: 'b', content: [], status: 'error' } });
        return messages;
      },
      'The content field at messages.2.content.1.toolResult cannot be empty when status value is error.',
    ],
    [
      'reasoning after text',
      () => [user({ text: 'Where is order A?' }), assistant({ text: 'Checking.' }, reasoning('Look it up.')), user({ text: 'Well?' })],
      'If an assistant message contains any thinking blocks, the first block must be thinking. Found text',
    ],
    [
      'altered reasoning text',
      () => [
        user({ text: 'Where is order A?' }),
        assistant(reasoning('I should look the order up.', signReasoning('Something else.')), use('a')),
        user(result('a')),
      ],
      'The model returned the following errors: messages.1.content.0: Invalid signature in thinking block',
    ],
    [
      'tool loop without reasoning',
      () => [user({ text: 'Where is order A?' }), assistant({ text: 'Checking.' }, use('a')), user(result('a'))],
      'The model returned the following errors: messages.1.content.0.type: Expected `thinking` or ' +
        '`redacted_thinking`, but found `text`. When `thinking` is enabled, a final `assistant` message must start ' +
        'with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend ' +
        'you include thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please ' +
        'consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking',
      { target: () => thinkingServer },
    ],
    [
      'second loop turn drops reasoning',
      () => [
        user({ text: 'Where are orders A and B?' }),
        assistant(use('a')),
        user(result('a')),
        assistant(reasoning('Now order B.'), use('b')),
        user(result('b')),
      ],
      'The model returned the following errors: messages.1.content.0.type: Expected `thinking` or ' +
        '`redacted_thinking`, but found `tool_use`. When `thinking` is enabled, a final `assistant` message must ' +
        'start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We ' +
        'recommend you include thinking blocks from previous turns. To avoid this requirement, disable `thinking`. ' +
        'Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking',
      { target: () => thinkingServer },
    ],
  ];

  test.each(cases)('%s rejected', async (_name, messages, message, options = {}) => {
    const target = options.target?.() ?? server;

    const error = await rejection(messages(), { target, toolConfig: options.toolConfig });

    expect(error?.name).toBe('ValidationException');
    expect(error?.$metadata.httpStatusCode).toBe(400);
    expect(error?.message).toBe(message);
    expect(target.pending()).toBe(1);
  });

  test('stream request rejected too', async () => {
    const messages = validConversation();
    messages[2] = user(result('a'));

    const error = await rejection(messages, { stream: true });

    expect(error?.$metadata.httpStatusCode).toBe(400);
    expect(error?.message).toBe('Expected toolResult blocks at messages.2.content for the following Ids: b');
    expect(server.requests.map((request) => request.operation)).toEqual(['converse-stream']);
  });

  test('closed tool loop needs no reasoning', async () => {
    const messages = [
      user({ text: 'Where is order A?' }),
      assistant(use('a')),
      user(result('a')),
      assistant({ text: 'It has shipped.' }),
      user({ text: 'Thanks.' }),
    ];

    expect(await rejection(messages, { target: thinkingServer })).toBeUndefined();
  });

  test('enforcement can be turned off', async () => {
    const messages = [user({ text: 'Hi.' }), user({ text: 'Are you there?' })];

    expect(await rejection(messages, { target: lenientServer })).toBeUndefined();
    expect(lenientServer.pending()).toBe(0);
  });
});

describe('token accounting', () => {
  test('counts text by the documented rule', () => {
    // "Where" and "is" are one letter run each, "12345" two digit tokens, "?" one.
    expect(countTextTokens('Where is 12345?')).toBe(1 + 1 + 2 + 1);
    expect(countTextTokens('internationalization')).toBe(4);
    expect(countTextTokens('{"a":1}')).toBe(7);
  });

  test('computes usage when none is scripted', async () => {
    server.script(textResponse('Order A has shipped.'));
    const messages = [user({ text: 'Where is order A?' })];

    const output = await clientOf(server).send(new ConverseCommand({ modelId: MODEL, messages }));

    const expectedInput = MESSAGE_OVERHEAD_TOKENS + countTextTokens('Where is order A?');
    expect(output.usage?.inputTokens).toBe(expectedInput);
    expect(output.usage?.outputTokens).toBe(countTextTokens('Order A has shipped.'));
    expect(output.usage?.totalTokens).toBe(expectedInput + countTextTokens('Order A has shipped.'));
  });

  test('tools add the tool-use prompt', async () => {
    server.script(textResponse('Done.'), textResponse('Done.'));
    const messages = [user({ text: 'Where is order A?' })];
    const client = clientOf(server);

    const plain = await client.send(new ConverseCommand({ modelId: MODEL, messages }));
    const withTools = await client.send(
      new ConverseCommand({ modelId: MODEL, messages, toolConfig: TOOL_CONFIG as never }),
    );

    const toolTokens = countTextTokens(JSON.stringify(TOOL_CONFIG.tools[0]));
    expect(withTools.usage!.inputTokens! - plain.usage!.inputTokens!).toBe(toolTokens + TOOL_USE_SYSTEM_PROMPT_TOKENS);
  });

  test('server count matches the module', async () => {
    server.script(toolUseResponse({ toolUseId: 'c', name: 'lookup_order', input: { orderId: 'ORD-c' } }));

    const output = await clientOf(server).send(
      new ConverseCommand({ modelId: MODEL, messages: validConversation(), toolConfig: TOOL_CONFIG as never }),
    );

    expect(output.usage?.inputTokens).toBe(countInputTokens(server.requests[0].body));
  });

  test('scripted usage wins', async () => {
    server.script(textResponse('Done.', { usage: { inputTokens: 900, outputTokens: 7 } }));

    const output = await clientOf(server).send(
      new ConverseCommand({ modelId: MODEL, messages: [user({ text: 'Hi.' })] }),
    );

    expect(output.usage).toEqual({ inputTokens: 900, outputTokens: 7, totalTokens: 907 });
  });
});

describe('responder', () => {
  test('answers by request content', async () => {
    const responder = await startBedrockServer({
      respond: (request) => {
        const messages = (request.body as { messages: Array<{ content: Array<{ text?: string }> }> }).messages;
        return textResponse(`You said: ${messages.at(-1)?.content[0].text}`);
      },
    });
    try {
      responder.script(textResponse('Scripted first.'));
      const client = clientOf(responder);
      const send = (said: string) =>
        client.send(new ConverseCommand({ modelId: MODEL, messages: [user({ text: said })] }));

      const first = await send('one');
      const second = await send('two');

      expect(first.output?.message?.content?.[0].text).toBe('Scripted first.');
      expect(second.output?.message?.content?.[0].text).toBe('You said: two');
    } finally {
      await responder.close();
    }
  });
});
