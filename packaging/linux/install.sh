#!/bin/sh
# Install Hounsfield for the current user, without root: the app folder into ~/.local/lib/hounsfield, the command
# into ~/.local/bin, the desktop entry, icon and DICOM / DICOMDIR file associations into ~/.local/share.
#   ./install.sh              install (or update) from the folder this script is in
#   ./install.sh --uninstall  remove all of it (your settings, autosaves, logs and models stay; see INSTALL.md)
# PREFIX=/some/where ./install.sh installs under another prefix instead of ~/.local.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
prefix=${PREFIX:-$HOME/.local}
data=${XDG_DATA_HOME:-$HOME/.local/share}
[ -n "${PREFIX:-}" ] && data=$prefix/share
app=$prefix/lib/hounsfield
bin=$prefix/bin

refresh() {
    command -v update-mime-database >/dev/null 2>&1 && update-mime-database "$data/mime" >/dev/null 2>&1 || true
    command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$data/applications" >/dev/null 2>&1 || true
    command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$data/icons/hicolor" >/dev/null 2>&1 || true
}

if [ "${1:-}" = "--uninstall" ]; then
    rm -rf "$app"
    rm -f "$bin/hounsfield" "$data/applications/hounsfield.desktop" "$data/mime/packages/hounsfield.xml" \
        "$data/icons/hicolor/256x256/apps/hounsfield.png" "$data/icons/hicolor/scalable/apps/hounsfield.svg"
    refresh
    echo "Hounsfield removed from $prefix"
    exit 0
fi

[ -x "$here/hounsfield" ] || { echo "install.sh: no hounsfield executable beside this script" >&2; exit 1; }
mkdir -p "$app" "$bin" "$data/applications" "$data/mime/packages" "$data/icons/hicolor/256x256/apps" \
    "$data/icons/hicolor/scalable/apps"
if [ "$here" != "$app" ]; then
    rm -rf "$app.new"
    cp -a "$here" "$app.new"
    rm -rf "$app"
    mv "$app.new" "$app"
fi
ln -sf "$app/hounsfield" "$bin/hounsfield"
sed "s|^Exec=hounsfield|Exec=$app/hounsfield|; s|^TryExec=hounsfield|TryExec=$app/hounsfield|" \
    "$app/share/hounsfield.desktop" > "$data/applications/hounsfield.desktop"
cp "$app/share/hounsfield-mime.xml" "$data/mime/packages/hounsfield.xml"
cp "$app/share/hounsfield.png" "$data/icons/hicolor/256x256/apps/hounsfield.png"
cp "$app/share/hounsfield.svg" "$data/icons/hicolor/scalable/apps/hounsfield.svg"
command -v xdg-mime >/dev/null 2>&1 && \
    xdg-mime default hounsfield.desktop application/dicom application/x-dicom-dicomdir >/dev/null 2>&1 || true
refresh
echo "Hounsfield $("$app/hounsfield" --version | cut -d' ' -f2) installed in $app"
case ":$PATH:" in *":$bin:"*) ;; *) echo "Add $bin to your PATH to run 'hounsfield' from a terminal." ;; esac
