// The official `openai` npm client against Sparks: list models, one plain and one streamed chat.
//
// Usage: OPENAI_BASE_URL=http://127.0.0.1:8787/v1 OPENAI_API_KEY=... node chat.mjs MODEL [PROMPT]
// Prints one JSON object on stdout; exits 1 (error JSON on stdout) when any call fails.
import OpenAI from "openai";

const [model, prompt = "hello from node"] = process.argv.slice(2);
if (!model) {
  console.error("usage: node chat.mjs MODEL [PROMPT]");
  process.exit(2);
}

const client = new OpenAI({ maxRetries: 0, timeout: 20_000 }); // reads OPENAI_BASE_URL/_API_KEY
const messages = [{ role: "user", content: prompt }];

try {
  const models = [];
  for await (const entry of client.models.list()) models.push(entry.id);

  const { data: plain, response } = await client.chat.completions
    .create({ model, messages })
    .withResponse();

  const stream = await client.chat.completions.create({
    model,
    messages,
    stream: true,
    stream_options: { include_usage: true },
  });
  let content = "";
  let chunks = 0;
  let finishReason = null;
  let usage = null;
  for await (const chunk of stream) {
    chunks += 1;
    const choice = chunk.choices[0];
    if (choice?.delta?.content) content += choice.delta.content;
    if (choice?.finish_reason) finishReason = choice.finish_reason;
    if (chunk.usage) usage = chunk.usage;
  }

  console.log(
    JSON.stringify({
      models,
      plain: {
        content: plain.choices[0].message.content,
        finish_reason: plain.choices[0].finish_reason,
        usage: plain.usage,
        request_id: response.headers.get("x-request-id"),
      },
      stream: { content, chunks, finish_reason: finishReason, usage },
    }),
  );
} catch (error) {
  console.log(JSON.stringify({ error: String(error), status: error?.status ?? null }));
  process.exit(1);
}
