# Sourced by the device scripts: unpacks the carried binaries (.gpu/gpu-check.xz, .gpu/llama.xz, built
# here by bench/gpu/build.sh and the llama build) into /tmp/g, once per machine.
mkdir -p /tmp/g
for b in gpu-check llama; do
    [ -x /tmp/g/$b ] || { [ -f .gpu/$b.xz ] && xz -dc .gpu/$b.xz > /tmp/g/$b && chmod +x /tmp/g/$b; }
done
