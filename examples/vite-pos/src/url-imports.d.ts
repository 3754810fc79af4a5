// Vite's `?url` imports (its own `vite/client` types need the DOM library, which a service
// worker's WebWorker library conflicts with).
declare module "*?url" {
  const url: string;
  export default url;
}
