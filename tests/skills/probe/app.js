// The probe skill: each export pushes on one limit of the sandbox.
import { callTool, log } from 'agentos:skill/host@0.1.0';

export function greet(name, mood) {
  log('info', `greeting ${name}`);
  const text = `Hello, ${name}!`;
  return { text, nameLength: name.length, shout: mood === 'loud' ? text.toUpperCase() : undefined };
}

export function describe(shape, tags, pair) {
  const what = shape.tag === 'circle' ? `circle of radius ${shape.val}` : shape.tag === 'named' ? shape.val : 'dot';
  return `${what} [${tags.join(',')}] ${pair[0]} ${pair[1]}`;
}

export function spin() {
  let n = 0n;
  for (;;) { n += 1n; }
}

export function hog(megabytes) {
  const kept = [];
  for (let i = 0; i < megabytes; i++) { kept.push(new Uint8Array(1024 * 1024).fill(i & 255)); }
  return kept.length;
}

function down(depth) { return depth === 0 ? 0 : 1 + down(depth - 1); }
export function recurse(depth) { return down(depth); }

export function bigOutput(bytes) { return 'x'.repeat(bytes); }

export function call(tool, inputJson) { return callTool(tool, inputJson); }

export function callMany(times) {
  let done = 0;
  for (let i = 0; i < times; i++) { callTool('agentos.time_now', '{}'); done++; }
  return done;
}

export function fail(message) { throw message; }
