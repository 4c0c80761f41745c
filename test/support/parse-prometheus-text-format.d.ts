declare module 'parse-prometheus-text-format' {
  /** prom2json's shape: values are strings; histograms carry buckets, count and sum. */
  export interface MetricFamily {
    name: string
    help: string
    type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED'
    metrics: {
      value?: string
      labels?: Record<string, string>
      buckets?: Record<string, string>
      count?: string
      sum?: string
    }[]
  }
  export default function parsePrometheusTextFormat(text: string): MetricFamily[]
}
