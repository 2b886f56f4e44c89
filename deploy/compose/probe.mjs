// Healthcheck for the natsfs images: exits 0 when GET URL answers 2xx within 3 s. The images have
// node but no curl or wget.  Usage: node probe.mjs http://127.0.0.1:9100/readyz
const url = process.argv[2];
try {
  const response = await fetch(url, { signal: AbortSignal.timeout(3000) });
  console.log(`${url}: ${response.status} ${await response.text()}`);
  process.exit(response.ok ? 0 : 1);
} catch (err) {
  console.log(`${url}: ${err.message}`);
  process.exit(1);
}
