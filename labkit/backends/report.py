"""What a teardown did: deleted, left alone (and why), failed, and still tagged as the kit's."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TeardownReport:
    """Filled in step by step (each line printed as it happens), then shown as a whole."""

    region: str
    deleted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: Anything still carrying the kit's tag, once the backend's last step has looked.
    leftovers: list[str] = field(default_factory=list)
    leftovers_checked: bool = False
    stack_deleted: bool = False

    @property
    def ok(self) -> bool:
        """True when nothing failed and nothing tagged by the kit remains."""
        return not self.errors and not self.leftovers

    def done(self, what: str) -> None:
        self.deleted.append(what)
        print(f"🗑️  {what}")

    def leave(self, what: str, why: str) -> None:
        self.skipped.append(f"{what} ({why})")
        print(f"⏭️  {what} ({why})")

    def fail(self, what: str) -> None:
        self.errors.append(what)
        print(f"❌ {what}")

    def describe(self) -> str:
        out = [f"Teardown in {self.region}:", f"🧹 Deleted {len(self.deleted)}:"]
        out += [f"   - {d}" for d in self.deleted]
        if self.skipped:
            out += [f"⏭️  Left alone {len(self.skipped)}:"] + [f"   - {s}" for s in self.skipped]
        out += [f"  FAILED    {e}" for e in self.errors]
        if self.leftovers:
            out.append("Still tagged as the kit's (delete by hand, or run the teardown again):")
            out += [f"  {arn}" for arn in self.leftovers]
        elif self.leftovers_checked:
            out.append("Nothing tagged as the kit's is left.")
        return "\n".join(out)

    __str__ = describe
