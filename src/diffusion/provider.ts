// The execution-provider setting, apart from onnxruntime so reading config does not load the native binding.

/** `auto`: CUDA when its libraries load, else CPU with a warning that says why; `cuda`: CUDA or fail; `cpu`. */
export type ProviderChoice = 'auto' | 'cuda' | 'cpu';
export const PROVIDER_CHOICES = ['auto', 'cuda', 'cpu'] as const satisfies readonly ProviderChoice[];
