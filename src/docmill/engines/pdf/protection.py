"""pdf.protect and pdf.unprotect: AES encryption with user/owner passwords and
permissions, and its removal given the password."""

from __future__ import annotations

import secrets
from pathlib import Path

from docmill.engines.base import EngineInput, EngineResult, Progress, output_stem
from docmill.engines.pdf.editing import Opened, _result, _save, open_document
from docmill.engines.pdf.params import ProtectParams, UnprotectParams, _Password
from docmill.errors import PasswordRequired


def _needs_password(opened: Opened, params: _Password, what: str) -> None:
    """Changing an encrypted document's protection takes its password, even if it opens
    without one (an owner password restricting what may be done with it)."""
    if opened.pdf.is_encrypted and (not params.password or opened.password_matched is None):
        raise PasswordRequired(f"the PDF is encrypted: give its password in 'password' to "
                               f"{what} it")


def protect(item: EngineInput, params: ProtectParams, workdir: Path,
            progress: Progress) -> EngineResult:
    import pikepdf

    with open_document(item, params.password) as opened:
        _needs_password(opened, params, "re-protect")
        progress(20, "opened")
        owner = params.owner_password or secrets.token_urlsafe(24)
        if not params.owner_password:
            opened.warnings.append("no owner password was given: a random one was set, so "
                                   "the permissions cannot be lifted")
        elif params.owner_password == params.user_password:
            opened.warnings.append("the owner and user passwords are the same: whoever "
                                   "opens the document may lift the permissions")
        allow = pikepdf.Permissions(
            print_lowres=params.allow_print,
            print_highres=params.allow_print and params.allow_print_high_res,
            extract=params.allow_copy, modify_other=params.allow_modify,
            modify_annotation=params.allow_annotate, modify_form=params.allow_fill_forms,
            modify_assembly=params.allow_assemble, accessibility=params.allow_accessibility)
        encryption = pikepdf.Encryption(user=params.user_password or "", owner=owner,
                                        R=6 if params.encryption == "aes-256" else 4,
                                        aes=True, metadata=True, allow=allow)
        out = workdir / f"{output_stem(item.name)}-protected.pdf"
        _save(opened, out, progress, 30, encryption=encryption)
        permissions = {"print": params.allow_print,
                       "print_high_res": params.allow_print and params.allow_print_high_res,
                       "copy": params.allow_copy, "modify": params.allow_modify,
                       "annotate": params.allow_annotate, "fill_forms": params.allow_fill_forms,
                       "assemble": params.allow_assemble,
                       "accessibility": params.allow_accessibility}
        return _result(out, opened, opened.pages, pages=opened.pages,
                       encryption=params.encryption.upper(),
                       user_password=bool(params.user_password),
                       owner_password="given" if params.owner_password else "random",
                       permissions=permissions)


def unprotect(item: EngineInput, params: UnprotectParams, workdir: Path,
              progress: Progress) -> EngineResult:
    with open_document(item, params.password) as opened:
        was_encrypted = opened.pdf.is_encrypted
        matched = opened.password_matched
        if not was_encrypted:
            opened.warnings.append("the PDF was not encrypted")
        _needs_password(opened, params, "unprotect")
        progress(20, "decrypted")
        out = workdir / f"{output_stem(item.name)}-unprotected.pdf"
        _save(opened, out, progress, 30, encryption=False)
        return _result(out, opened, opened.pages, pages=opened.pages,
                       was_encrypted=was_encrypted, password_matched=matched)
