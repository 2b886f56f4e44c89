import { X509Certificate } from "node:crypto";
import { Gauge, type Registry } from "prom-client";

const CERT_EXPIRY_METRIC = "natsfs_cert_expiry_timestamp_seconds";

/** The gauge on `registry`, created on first use so every role's registry can carry it. */
export function certificateExpiryGauge(registry: Registry): Gauge<"identity"> {
  const existing = registry.getSingleMetric(CERT_EXPIRY_METRIC);
  if (existing instanceof Gauge) return existing as Gauge<"identity">;
  return new Gauge({
    name: CERT_EXPIRY_METRIC,
    help: "Unix time at which the TLS certificate this process presents stops being valid",
    labelNames: ["identity"] as const,
    registers: [registry],
  });
}

/** notAfter of a PEM certificate (the first one when `certPem` holds a chain). */
export function certificateNotAfter(certPem: string | Buffer): Date {
  const notAfter = new Date(new X509Certificate(certPem).validTo);
  if (Number.isNaN(notAfter.getTime())) throw new Error("certificate has an unreadable notAfter date");
  return notAfter;
}

/**
 * Records when `identity`'s certificate expires so an alert can warn ahead of time.
 * Returns the expiry so the caller can also log it.
 */
export function observeCertificateExpiry(registry: Registry, identity: string, certPem: string | Buffer): Date {
  const notAfter = certificateNotAfter(certPem);
  certificateExpiryGauge(registry).set({ identity }, notAfter.getTime() / 1000);
  return notAfter;
}
