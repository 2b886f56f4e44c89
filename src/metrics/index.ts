export { createClientMetrics, type ClientMetrics, type ClientMetricsOptions } from "./client-metrics.js";
export { createServerMetrics, type ServerMetrics, type ServerMetricsOptions } from "./server-metrics.js";
export { certificateNotAfter, observeCertificateExpiry } from "./cert-expiry.js";
export { startMetricsServer, type MetricsServer, type MetricsServerOptions, type Readiness } from "./http.js";
export { metricsReference } from "./reference.js";
export { LATENCY_BUCKETS_SECONDS, OTHER_LABEL } from "./registry.js";
export type { ClientStatus, ExportStatus, LastError, NodeStatus, ServerStatus } from "./status.js";
