"""Views: tables, figures, the README's generated part, and one helper object per notebook."""
