// The slice of fuse-native 2.2.6's API the kernel adapter uses (the package ships no types).
declare module "fuse-native" {
  type Callback = (code: number, ...values: unknown[]) => void;
  class Fuse {
    constructor(mountpoint: string, ops: Record<string, (...args: never[]) => void>, options: Record<string, unknown>);
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;
    static unmount(mountpoint: string, cb: (err: Error | null) => void): void;
  }
  export type { Callback };
  export default Fuse;
}
