/** Tests take free ports from the same helper the demo uses. */
export { freePort } from "../../src/cli/ports.js";
